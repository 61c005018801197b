{{/* Names and labels shared by every manifest of the chart. */}}
{{- define "bessai-fleet.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "bessai-fleet.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "bessai-fleet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bessai-fleet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "bessai-fleet.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "bessai-fleet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: fleet
app.kubernetes.io/part-of: open-bess-edge
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "bessai-fleet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "bessai-fleet.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding BESSAI_FLEET_DATABASE_URL and the extra secret environment. */}}
{{- define "bessai-fleet.secretName" -}}
{{- printf "%s-secrets" (include "bessai-fleet.fullname" .) -}}
{{- end -}}

{{- define "bessai-fleet.databaseSecret" -}}
{{- if .Values.database.existingSecret -}}
{{- .Values.database.existingSecret -}}
{{- else -}}
{{- include "bessai-fleet.secretName" . -}}
{{- end -}}
{{- end -}}

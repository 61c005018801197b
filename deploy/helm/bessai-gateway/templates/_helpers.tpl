{{/* Names and labels shared by every manifest of the chart. */}}
{{- define "bessai-gateway.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "bessai-gateway.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "bessai-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bessai-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "bessai-gateway.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "bessai-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: gateway
app.kubernetes.io/part-of: open-bess-edge
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "bessai-gateway.secretName" -}}
{{- default (printf "%s-env" (include "bessai-gateway.fullname" .)) .Values.existingSecret -}}
{{- end -}}

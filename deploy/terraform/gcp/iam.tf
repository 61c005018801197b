# Least privilege: each identity gets one role on one resource; nothing at project level except
# the BigQuery job role, which load jobs cannot be granted on a dataset. No keys are made here:
# use Workload Identity (GKE) for the fleet, and for a site gateway a key you create and rotate
# yourself or Workload Identity Federation (docs/deployment.md).

resource "google_service_account" "gateway" {
  account_id   = "${var.name_prefix}-gateway"
  display_name = "open-bess-edge site gateways (publish telemetry)"
}

resource "google_service_account" "fleet" {
  account_id   = "${var.name_prefix}-fleet"
  display_name = "open-bess-edge fleet service (consume telemetry, export to BigQuery)"
}

# Gateways publish to the telemetry topic only.
resource "google_pubsub_topic_iam_member" "gateway_publishes" {
  topic  = google_pubsub_topic.telemetry.id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${google_service_account.gateway.email}"
}

# The fleet service pulls and acks on its subscription only.
resource "google_pubsub_subscription_iam_member" "fleet_subscribes" {
  subscription = google_pubsub_subscription.fleet.id
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:${google_service_account.fleet.email}"
}

# ... writes rows into the fleet dataset only ...
resource "google_bigquery_dataset_iam_member" "fleet_writes_dataset" {
  dataset_id = google_bigquery_dataset.fleet.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = "serviceAccount:${google_service_account.fleet.email}"
}

# ... and runs the load jobs that write them.
resource "google_project_iam_member" "fleet_runs_jobs" {
  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = "serviceAccount:${google_service_account.fleet.email}"
}

# Dead lettering: Pub/Sub's service agent publishes to the dead-letter topic and acks the
# forwarded message on the source subscription.
resource "google_pubsub_topic_iam_member" "agent_publishes_dead_letters" {
  topic  = google_pubsub_topic.dead_letter.id
  role   = "roles/pubsub.publisher"
  member = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "agent_acks_dead_letters" {
  subscription = google_pubsub_subscription.fleet.id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

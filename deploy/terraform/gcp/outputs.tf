output "telemetry_topic" {
  description = "Topic the gateways' Pub/Sub sink publishes to."
  value       = google_pubsub_topic.telemetry.id
}

output "fleet_subscription" {
  description = "Subscription the fleet service pulls from."
  value       = google_pubsub_subscription.fleet.id
}

output "dead_letter_subscription" {
  description = "Where undeliverable envelopes wait for inspection."
  value       = google_pubsub_subscription.dead_letter.id
}

output "bigquery_table" {
  description = "Table the fleet service exports envelopes to (project.dataset.table)."
  value       = "${var.project_id}.${google_bigquery_dataset.fleet.dataset_id}.${google_bigquery_table.envelopes.table_id}"
}

output "gateway_service_account" {
  description = "Identity of the site gateways (publisher on the telemetry topic)."
  value       = google_service_account.gateway.email
}

output "fleet_service_account" {
  description = "Identity of the fleet service (subscriber, BigQuery writer)."
  value       = google_service_account.fleet.email
}

# The GCP path of the fleet: gateways publish envelopes to Pub/Sub (ordering key = site), the
# fleet consumer pulls them (dead letters after max_delivery_attempts) and exports to BigQuery.
# Checked offline only (tests/deploy/test_terraform.py); see docs/deployment.md for what was not.
terraform {
  required_version = ">= 1.5"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 5.0, < 7.0"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  # Pub/Sub's own service agent: it forwards undeliverable messages to the dead-letter topic and
  # must be allowed to publish there and to acknowledge them on the source subscription.
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  labels = merge(var.labels, {
    app = "open-bess-edge"
  })
}

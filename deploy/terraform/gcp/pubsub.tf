resource "google_pubsub_topic" "telemetry" {
  name                       = "${var.name_prefix}-telemetry"
  message_retention_duration = var.message_retention
  labels                     = local.labels
}

resource "google_pubsub_topic" "dead_letter" {
  name                       = "${var.name_prefix}-telemetry-dead-letter"
  message_retention_duration = var.message_retention
  labels                     = local.labels
}

# The fleet consumer's subscription: in order per site (the sink's ordering key), acked after
# the database commit, dead-lettered after max_delivery_attempts.
resource "google_pubsub_subscription" "fleet" {
  name                       = "${var.name_prefix}-fleet"
  topic                      = google_pubsub_topic.telemetry.id
  ack_deadline_seconds       = var.ack_deadline_seconds
  message_retention_duration = var.message_retention
  retain_acked_messages      = false
  enable_message_ordering    = true
  labels                     = local.labels

  expiration_policy {
    ttl = "" # never expires, however long the consumer is away
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }
}

# Dead letters are kept here for inspection and replay.
resource "google_pubsub_subscription" "dead_letter" {
  name                       = "${var.name_prefix}-telemetry-dead-letter"
  topic                      = google_pubsub_topic.dead_letter.id
  message_retention_duration = var.message_retention
  labels                     = local.labels

  expiration_policy {
    ttl = ""
  }
}

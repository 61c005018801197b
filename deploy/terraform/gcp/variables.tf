variable "project_id" {
  description = "GCP project that holds the fleet's Pub/Sub and BigQuery resources."
  type        = string
}

variable "region" {
  description = "Region of the provider (Pub/Sub is global; BigQuery uses bigquery_location)."
  type        = string
  default     = "southamerica-west1"
}

variable "name_prefix" {
  description = "Prefix of every resource name."
  type        = string
  default     = "bessai"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.name_prefix))
    error_message = "name_prefix: 2-21 characters, lower-case letters, digits and -, starting with a letter."
  }
}

variable "message_retention" {
  description = "How long the topic and subscriptions keep messages (a site offline longer than this loses nothing: its outbox keeps them)."
  type        = string
  default     = "604800s"
}

variable "ack_deadline_seconds" {
  description = "Ack deadline of the fleet subscription; the consumer acks after its database commit."
  type        = number
  default     = 60
  validation {
    condition     = var.ack_deadline_seconds >= 10 && var.ack_deadline_seconds <= 600
    error_message = "ack_deadline_seconds must be between 10 and 600 (Pub/Sub's limits)."
  }
}

variable "max_delivery_attempts" {
  description = "Deliveries before a message goes to the dead-letter topic."
  type        = number
  default     = 10
  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "max_delivery_attempts must be between 5 and 100 (Pub/Sub's limits)."
  }
}

variable "bigquery_location" {
  description = "Location of the BigQuery dataset."
  type        = string
  default     = "southamerica-west1"
}

variable "partition_expiration_days" {
  description = "Days BigQuery keeps a day's partition of envelopes (0: forever)."
  type        = number
  default     = 0
}

variable "labels" {
  description = "Labels added to every resource that takes labels."
  type        = map(string)
  default     = {}
}

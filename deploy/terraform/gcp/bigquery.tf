resource "google_bigquery_dataset" "fleet" {
  dataset_id                      = replace("${var.name_prefix}_fleet", "-", "_")
  description                     = "open-bess-edge telemetry envelopes exported by the fleet service."
  location                        = var.bigquery_location
  default_partition_expiration_ms = var.partition_expiration_days > 0 ? var.partition_expiration_days * 86400000 : null
  labels                          = local.labels
}

# One row per envelope (docs/telemetry.md); the export deduplicates on (site_id, boot_id, seq).
resource "google_bigquery_table" "envelopes" {
  dataset_id          = google_bigquery_dataset.fleet.dataset_id
  table_id            = "envelopes"
  description         = "Telemetry, alarm and command envelopes of every site."
  deletion_protection = true
  labels              = local.labels

  time_partitioning {
    type  = "DAY"
    field = "ts"
  }

  clustering = ["site_id", "kind"]

  schema = jsonencode([
    { name = "schema_version", type = "INT64", mode = "REQUIRED", description = "Envelope schema version." },
    { name = "site_id", type = "STRING", mode = "REQUIRED", description = "Site that produced the message." },
    { name = "device_id", type = "STRING", mode = "NULLABLE", description = "Device, or null for site-level values." },
    { name = "boot_id", type = "STRING", mode = "REQUIRED", description = "Gateway boot that numbered seq." },
    { name = "seq", type = "INT64", mode = "REQUIRED", description = "Per-site sequence number within the boot." },
    { name = "ts", type = "TIMESTAMP", mode = "REQUIRED", description = "Source time of the values, UTC." },
    { name = "historical", type = "BOOL", mode = "REQUIRED", description = "Delivered late, after an outage." },
    { name = "kind", type = "STRING", mode = "REQUIRED", description = "telemetry, alarm or command." },
    { name = "values", type = "JSON", mode = "REQUIRED", description = "Measurements, unit in each name." },
  ])
}

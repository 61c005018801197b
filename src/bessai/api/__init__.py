"""HTTP API served by the gateway process."""

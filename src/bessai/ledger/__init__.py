"""Energy credits anyone can verify offline: an append-only log of Ed25519-signed records
(verified energy minted from telemetry, transfers signed by their sender), a Merkle tree over
the log (RFC 6962) and signed checkpoints. docs/credits.md has the format and threat model."""

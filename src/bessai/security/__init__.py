"""The security monitor on the Modbus path: protocol checks, foreign-write re-reads, physics
residuals and a learned anomaly score (docs/security-monitor.md), and the attack kit that
measures it (`bessai attack`)."""

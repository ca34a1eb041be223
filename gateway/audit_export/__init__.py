"""The audit export to a SIEM: every audit record, as written, to a signed
webhook and/or OpenTelemetry logs (docs/operations.md, "Audit export")."""

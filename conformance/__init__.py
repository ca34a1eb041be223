"""Conformance suites nobody here wrote, run directly and through the gateway
and compared check by check (`make conformance`; docs/conformance.md)."""

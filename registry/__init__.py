"""Capability cards: fetching (SSRF-safe), validation, normalisation, signatures, storage."""

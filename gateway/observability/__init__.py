"""What operators watch: Prometheus metrics (traces and structured logs next)."""

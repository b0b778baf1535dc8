"""Watching the app run: its numbers in Prometheus' format, for `GET /metrics` (`metrics`)."""

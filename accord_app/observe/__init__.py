"""Watching the app run: its numbers in Prometheus' format for `GET /metrics` (`metrics`),
and the inspector page (`inspector`) with what it shows (`survey`, `timeline`)."""

"""Observability: logging in HAProxy's formats, the Prometheus metrics and the stats page."""

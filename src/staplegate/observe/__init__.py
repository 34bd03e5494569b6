"""Observability: logging in HAProxy's formats (metrics and the status page come later)."""

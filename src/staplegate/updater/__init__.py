"""Drives the OCSP core: timers, fetch tasks, persistence, and the runtime API's service."""

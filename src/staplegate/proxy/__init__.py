"""Listeners, TCP forwarding, backend choice and health checks of one worker process."""

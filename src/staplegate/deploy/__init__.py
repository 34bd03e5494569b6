"""What gets served: a generation (configuration + certificates), its serve plan, routing."""

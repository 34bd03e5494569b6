"""What gets served: a generation (configuration + certificates) and the serve plan built from it."""

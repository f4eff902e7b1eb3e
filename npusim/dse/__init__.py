"""Design-space exploration: sweep specs, strategies, the results store, executors, analysis."""

"""Profiling: each runtime's own profiler, with every node placed in RepNeXt's structure."""

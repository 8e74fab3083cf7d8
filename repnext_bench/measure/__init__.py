"""Timing loop, statistics and memory of one case."""

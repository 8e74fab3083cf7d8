"""Hardware comparison: many run reports from many machines merged into one report."""

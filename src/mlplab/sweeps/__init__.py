"""Sweeps: the report over a sweep's jobs (and what grows around it: resuming, stacked training)."""

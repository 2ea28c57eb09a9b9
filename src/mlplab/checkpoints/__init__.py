"""Everything about a run's saved state: writing and reading checkpoint files, finding the one a command names,
checking that a resume is the same run, the checkpoint callback, and the command line of a resume."""

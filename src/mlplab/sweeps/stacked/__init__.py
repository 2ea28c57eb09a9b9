"""Stacked sweeps: one process trains many sweep jobs as one batched network, each job still a run of its own.

`hydra/launcher=stacked` (hydra_plugins.mlplab_stacked) calls `launch`: the jobs are grouped into stacks
(grouping), each stack is trained as one batched MLP (network, optimizer, training) and every member then
finishes as its single run would: its own test, checkpoints, loggers and run_record.json (members).
`hydra/launcher=stacked_submitit_local|stacked_slurm` (hydra_plugins.mlplab_stacked.submitit_launcher) groups the
jobs with `launch.plan` in the submitting process and runs each stack with `launch.run_stack` in a submitit job.
"""

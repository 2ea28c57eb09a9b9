"""The sweep report: jobs (read from their run records), tables, the plot, W&B, and the Hydra callback that writes
it all when a multirun ends (conf/hydra/default.yaml: mlplab.sweeps.report.callback.SweepReport)."""

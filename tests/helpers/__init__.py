"""What several test modules share, so that no test module imports another: `runs` (running train.py in a
subprocess or in this process, and reading what its runs and sweeps leave), `callbacks` (the test callbacks and data
modules that configs name by `_target_`, with the overrides that add them), `statlib` (tiny California housing
files), `wandb_offline` (offline W&B runs read back), `configs` (walking the shipped
configs' groups and keys), `searches` (an Optuna search's command line, run in this process),
`housing_sweeps` (a housing sweep through a launcher, its jobs read back and compared)."""

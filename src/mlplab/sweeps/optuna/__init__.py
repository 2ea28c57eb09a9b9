"""mlplab's Optuna sweeper (hydra/sweeper=mlplab_optuna): the search space (space), the settings (settings), the
shared study (study), the ask-launch-tell loop (search) and what it leaves in the sweep folder (results).
The job's side, reporting to its trial and stopping when pruned, is mlplab.callbacks.optuna_pruning."""

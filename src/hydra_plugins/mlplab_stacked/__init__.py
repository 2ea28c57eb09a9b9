"""`hydra/launcher=stacked`: sweep jobs trained together as one batched network (mlplab.sweeps.stacked)."""

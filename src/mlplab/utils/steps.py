"""When a training step's metrics reach the loggers."""

from __future__ import annotations

import lightning as L


def is_logging_step(trainer: L.Trainer) -> bool:
    """Whether Lightning writes the current training step's metrics to the loggers.

    Lightning does so every `trainer.log_every_n_steps` optimizer steps (every step under
    `fast_dev_run`); a `self.log` call costs ~0.2 ms, so per-step values are logged only then.
    Valid from `on_train_batch_start` to `training_step`, before this step's optimizer step counts.
    """
    every = trainer.log_every_n_steps
    return bool(trainer.fast_dev_run) or (every > 0 and (trainer.global_step + 1) % every == 0)

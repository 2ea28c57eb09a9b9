"""A stand-in for one member's Trainer, so that Lightning's own ModelCheckpoint and EarlyStopping code decides for
the member (top-k, file names and versions, NaN scores, patience, thresholds) exactly as in its single run, and so
does mlplab's OptunaPruning (its trial's report and pruner) in a search.

It answers only what those callbacks read when they save or check (pinned lightning 2.6; the private methods
mlplab calls are checked in tests/test_upstream_internals.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import torch


class _OneProcess:
    """The strategy of one process: every decision and broadcast is this process's own."""

    def reduce_boolean_decision(self, decision: bool, all: bool = True) -> bool:  # noqa: A002 (Lightning's name)
        return decision

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        return obj

    def barrier(self, name: str | None = None) -> None:
        return None

    def remove_checkpoint(self, filepath: str) -> None:
        if os.path.exists(filepath):
            os.remove(filepath)


class MemberTrainer:
    """What a member's ModelCheckpoint and EarlyStopping see of "the trainer": its epoch, step, metrics and stop flag;
    `save_checkpoint(path)` calls `save(path)` (the member's checkpoint writer)."""

    world_size = 1
    global_rank = 0
    is_global_zero = True
    fast_dev_run = False
    sanity_checking = False
    ckpt_path = None

    def __init__(self, save: Callable[[str], None]) -> None:
        self._save = save
        self.strategy = _OneProcess()
        self.loggers: list[Any] = []
        self.current_epoch = 0
        self.global_step = 0
        self.should_stop = False  # sticky, as Lightning's: min_epochs lets training go on after it is set
        self.callback_metrics: dict[str, torch.Tensor] = {}
        # ModelCheckpoint raises on a missing monitored metric once validation ran (every stacked epoch validates)
        self.fit_loop = SimpleNamespace(epoch_loop=SimpleNamespace(val_loop=SimpleNamespace(_has_run=True)))

    def at(self, epoch: int, step: int, metrics: dict[str, float]) -> MemberTrainer:
        """Set the epoch, step and metrics the callbacks see."""
        self.current_epoch, self.global_step = epoch, step
        self.callback_metrics = {name: torch.tensor(value) for name, value in metrics.items()}
        return self

    def save_checkpoint(self, filepath: str, weights_only: bool = False, storage_options: Any = None) -> None:
        self._save(str(filepath))

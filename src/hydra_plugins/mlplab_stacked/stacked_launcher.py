"""The stacked launcher's Hydra side; the logic lives in mlplab.sweeps.stacked (imported only when a sweep launches)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class StackedLauncher(Launcher):
    """Trains the jobs of each batch that differ only in lr and seed as one stack of at most `max_members` members."""

    def __init__(self, max_members: int = 16, devices: Any = None) -> None:
        from mlplab.sweeps.jobs import checked_max_members  # light: no torch at Hydra's plugin scan

        self.max_members = checked_max_members(max_members)
        self.devices = devices  # null: the visible GPUs when the jobs use one; a list of device ids
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from mlplab.sweeps.stacked.launch import (
            launch,  # Hydra imports every plugin at start-up: keep torch out of that
        )

        return launch(self, job_overrides, initial_job_idx)

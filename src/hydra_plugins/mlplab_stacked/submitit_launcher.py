"""`hydra/launcher=stacked_submitit_local|stacked_slurm`: the sweep's jobs grouped into stacks in the submitting
process (as hydra/launcher=stacked groups them), each stack one submitit job that trains it (mlplab.sweeps.stacked.launch).

Hydra's submitit launcher does the rest: its settings (every key of submitit_local / submitit_slurm, plus
`max_members`), the executor they configure, the folder `<sweep>/.submitit/`, and the Singleton state the submitted
process starts from. torch and mlplab are imported only when a sweep launches or a stack runs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, setup_globals
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


class StackedSubmititLauncher(BaseSubmititLauncher):
    """One submitit job per stack of at most `max_members` jobs (a job that runs alone is a submitit job too)."""

    def __init__(self, max_members: int = 16, **params: Any) -> None:
        from mlplab.sweeps.jobs import checked_max_members  # light: no torch at Hydra's plugin scan

        self.max_members = checked_max_members(max_members)
        super().__init__(**params)

    def executor_parameters(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(AutoExecutor's arguments, update_parameters' arguments) from the launcher's settings, as Hydra's
        BaseSubmititLauncher.launch derives them: the keys every executor takes as they are, the others prefixed."""
        init_keys = {"max_num_timeout"}
        init = {"folder": self.params["submitit_folder"]}
        init.update({f"{self._EXECUTOR}_{k}": v for k, v in self.params.items() if k in init_keys})
        shared = set(OmegaConf.structured(BaseQueueConf).keys())
        resources = {
            k if k in shared else f"{self._EXECUTOR}_{k}": v
            for k, v in self.params.items()
            if k not in init_keys | {"submitit_folder"}
        }
        return init, resources

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit  # imported when a sweep launches: Hydra imports every plugin at start-up

        from mlplab.sweeps.stacked.launch import plan

        assert self.config is not None
        batch = plan(self, job_overrides, initial_job_idx)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        init, resources = self.executor_parameters()
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init)
        executor.update_parameters(**resources)
        state = Singleton.get_state()
        stacks = [(*batch.of(stack), stack.alone, state) for stack in batch.stacks]
        jobs = executor.map_array(self, *zip(*stacks))
        for job, stack in zip(jobs, batch.stacks):
            jobs_in = ", ".join(f"#{batch.nums[i]}" for i in stack.jobs)
            log.info("Submitit '%s' job %s runs %s (logs in %s)", self._EXECUTOR, job.job_id, jobs_in, job.paths.folder)
        returns: list[JobReturn | None] = [None] * len(batch.cfgs)
        for job, stack in zip(jobs, batch.stacks):
            for i, job_return in zip(stack.jobs, job.results()[0]):
                returns[i] = job_return
        return returns  # type: ignore[return-value]  # every stack's job filled its jobs' places

    def __call__(  # type: ignore[override]  # a stack's jobs, not one job's overrides
        self, cfgs: list[DictConfig], nums: list[int], alone: str | None, singleton_state: dict[type, Singleton]
    ) -> list[JobReturn]:
        """The submitted job: train one stack (or run the one job that runs alone), one JobReturn per job."""
        import submitit

        from mlplab.sweeps.stacked.grouping import Stack
        from mlplab.sweeps.stacked.launch import describe, run_stack

        assert self.config is not None
        Singleton.set_state(singleton_state)
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        stack = Stack(list(range(len(cfgs))), alone=alone)
        job_id = submitit.JobEnvironment().job_id
        log.info("Submitit job %s: %s", job_id, describe(stack, cfgs, nums))
        return run_stack(self, cfgs, nums, alone=alone)


class StackedLocalLauncher(StackedSubmititLauncher):
    _EXECUTOR = "local"


class StackedSlurmLauncher(StackedSubmititLauncher):
    _EXECUTOR = "slurm"

"""DDP for Hydra jobs: the extra processes re-run this job, in its own folder, whatever launched it.

Lightning's `ddp` strategy starts ranks 1..N-1 by re-running `sys.argv`. Inside a Hydra multirun that
re-runs the whole sweep in every extra process (Lightning issue #11300), and inside a joblib or
submitit worker `sys.argv` is the worker's, not train.py's. `HydraDDPStrategy` starts them from the
job instead: `python -m <entry point> <this job's overrides> hydra.run.dir=<this job's folder>`, as a
single run. `end_distributed_run` (called at the end of every job) leaves the process as it found it,
so the next job of an in-process sweep starts its own process group.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.strategies import DDPStrategy


class HydraDDPStrategy(DDPStrategy):
    """Lightning's DDP (one process per device) that also works inside Hydra sweeps and launcher workers.

    Args:
        entry_point: the module the extra processes run (`python -m <entry_point>`); by default the mlplab
            entry point of the job's config (`train` -> mlplab.train, `eval` -> mlplab.eval).
        **kwargs: Lightning's DDPStrategy arguments (process_group_backend, find_unused_parameters, ...).
    """

    def __init__(self, entry_point: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.entry_point = entry_point

    # Relies on Lightning internals (lightning 2.6, pinned in pyproject.toml): the Trainer calls the strategy's
    # `_configure_launcher`, which sets `self._launcher`, a `_SubprocessScriptLauncher` for `ddp`. Imported here,
    # not at the module's top, so that a rename breaks DDP runs only, never a single run's import.
    # tests/test_upstream_internals.py fails the day either changes.
    def _configure_launcher(self) -> None:
        from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher

        from mlplab.distributed.launcher import HydraJobLauncher

        super()._configure_launcher()
        if isinstance(self._launcher, _SubprocessScriptLauncher):
            self._launcher = HydraJobLauncher(
                self.cluster_environment, self.num_processes, self.num_nodes, entry_point=self.entry_point
            )

"""DDP for Hydra jobs: the extra processes re-run this job, in its own folder, whatever launched it.

Lightning's `ddp` strategy starts ranks 1..N-1 by re-running `sys.argv`. Inside a Hydra multirun that
re-runs the whole sweep in every extra process (Lightning issue #11300), and inside a joblib or
submitit worker `sys.argv` is the worker's, not train.py's. `HydraDDPStrategy` starts them from the
job instead: `python -m <entry point> <this job's overrides> hydra.run.dir=<this job's folder>`, as a
single run. `end_distributed_run` (called at the end of every job) leaves the process as it found it,
so the next job of an in-process sweep starts its own process group.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.strategies import DDPStrategy

from mlplab.utils.overrides import quoted_override

log = logging.getLogger(__name__)

_ENTRY_POINTS = {"train": "mlplab.train", "eval": "mlplab.eval"}  # config name -> module with its Hydra main
# what a DDP run changes in this process (restored by end_distributed_run)
_started: list[tuple[subprocess.Popen, str]] = []  # the extra processes of the current run, with their log's name
_saved_env: dict[str, str | None] = {}  # environment variables as they were before the run
_saved_threads: list[int] = []


def in_sweep() -> bool:
    """True inside a job of a Hydra multirun (any launcher or sweeper)."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def job_command(local_rank: int, entry_point: str | None = None) -> list[str]:
    """The command that runs rank `local_rank` of the current Hydra job as a single run in the job's folder."""
    hydra_cfg = HydraConfig.get()
    config_name = hydra_cfg.job.config_name
    module = entry_point or _ENTRY_POINTS.get(config_name)
    if module is None:
        raise ValueError(
            f"DDP cannot tell which module runs config {config_name!r}: set trainer.strategy.entry_point=<module> "
            f"(a module whose Hydra main takes that config; known: {', '.join(_ENTRY_POINTS.values())})"
        )
    sources = [source for source in hydra_cfg.runtime.config_sources if source.schema == "file"]
    # the job's config comes from the same folders: its app's (--config-path) and any added with --config-dir
    return [
        sys.executable,
        "-m",
        module,
        f"--config-name={config_name}",
        *(f"--config-path={s.path}" for s in sources if s.provider == "main"),
        *(f"--config-dir={s.path}" for s in sources if s.provider == "command-line"),
        *hydra_cfg.overrides.task,
        quoted_override("hydra.run.dir", hydra_cfg.runtime.output_dir),
        "hydra.mode=RUN",
        "hydra.output_subdir=null",  # the job's .hydra/ is rank 0's
        f"hydra.job.name={hydra_cfg.job.name}_rank{local_rank}",  # its log file: <job folder>/<name>_rank<k>.log
    ]


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
    # tests/test_distributed.py fails the day either changes.
    def _configure_launcher(self) -> None:
        from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher

        from mlplab.ddp_launcher import HydraJobLauncher

        super()._configure_launcher()
        if isinstance(self._launcher, _SubprocessScriptLauncher):
            self._launcher = HydraJobLauncher(
                self.cluster_environment, self.num_processes, self.num_nodes, entry_point=self.entry_point
            )


def end_distributed_run(failed: bool = False) -> list[str]:
    """Wait for (after a failure: briefly, then stop) the extra processes this run started, close its process
    group and restore the environment, so the next run in this process starts afresh. A no-op without DDP.

    Returns a line for each extra process that failed by itself (exit code, log file): the reason may be there.
    """
    notes = []
    for process, log_name in _started:
        try:
            code = process.wait(timeout=5 if failed else 60)
        except subprocess.TimeoutExpired:
            process.kill()  # after a failure it may wait forever in a collective its failed peer never joins
            process.wait()
            continue
        if code:
            notes.append(f"a DDP process exited with code {code}: see {log_name}")
            if not failed:
                log.warning("After this run %s", notes[-1])
    _started.clear()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    for key, value in _saved_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    _saved_env.clear()
    if _saved_threads:
        torch.set_num_threads(_saved_threads.pop())
    return notes

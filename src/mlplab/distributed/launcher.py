"""The launcher of mlplab's DDP strategy (mlplab.distributed.strategy.HydraDDPStrategy): ranks 1..N-1 start as single
runs of the current Hydra job.

Imported only when a DDP run starts: it builds on private Lightning names (lightning 2.6, pinned in
pyproject.toml), `_SubprocessScriptLauncher`, `_launch_process_observer` and `_set_num_threads_if_needed`,
which an upgrade may rename. tests/test_upstream_internals.py fails then.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from hydra.core.hydra_config import HydraConfig
from lightning.fabric.strategies.launchers.subprocess_script import _launch_process_observer
from lightning.fabric.utilities.distributed import _set_num_threads_if_needed
from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher

from mlplab.distributed import processes
from mlplab.utils.hydra_runtime import in_sweep
from mlplab.utils.overrides import quoted_override

log = logging.getLogger(__name__)

_ENTRY_POINTS = {"train": "mlplab.train", "eval": "mlplab.eval"}  # config name -> module with its Hydra main


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


class HydraJobLauncher(_SubprocessScriptLauncher):
    """Starts ranks 1..N-1 of this node as single runs of the current Hydra job (see the module docstring)."""

    def __init__(self, *args: Any, entry_point: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.entry_point = entry_point

    def launch(self, function: Callable, *args: Any, trainer: Any = None, **kwargs: Any) -> Any:
        if not HydraConfig.initialized():  # train() called from Python: Lightning's own way
            return super().launch(function, *args, trainer=trainer, **kwargs)
        self.cluster_environment.validate_settings(num_devices=self.num_processes, num_nodes=self.num_nodes)
        if not self.cluster_environment.creates_processes_externally:
            self._start_ranks()
            if not in_sweep():
                # a single run: if a rank dies, end everything rather than hang in a collective (Lightning's way).
                # In a sweep that would end the sweep; the dead rank's peers fail instead and the job is recorded.
                _launch_process_observer(self.procs)
        processes.keep_threads_and_env("OMP_NUM_THREADS")
        _set_num_threads_if_needed(num_processes=self.num_processes)  # cores / processes, unless OMP_NUM_THREADS is set
        return function(*args, **kwargs)

    def _start_ranks(self) -> None:
        self._check_can_spawn_children()
        env = self.cluster_environment
        ddp_env = {
            "MASTER_ADDR": env.main_address,
            "MASTER_PORT": str(env.main_port),
            "NODE_RANK": str(env.node_rank()),
            "LOCAL_RANK": str(env.local_rank()),
            "WORLD_SIZE": str(self.num_processes * self.num_nodes),
        }
        for key, value in ddp_env.items():
            processes.set_env(key, value)
        hydra_cfg = HydraConfig.get()
        for local_rank in range(1, self.num_processes):
            command = job_command(local_rank, self.entry_point)
            log.debug("Starting rank %d: %s", local_rank, " ".join(command))
            process = subprocess.Popen(
                command, env={**os.environ, "LOCAL_RANK": str(local_rank)}, cwd=hydra_cfg.runtime.cwd
            )
            self.procs.append(process)
            processes.started(process, f"{hydra_cfg.job.name}_rank{local_rank}.log")

"""The launcher of mlplab's DDP strategy (mlplab.distributed.HydraDDPStrategy): ranks 1..N-1 start as single
runs of the current Hydra job.

Imported only when a DDP run starts: it builds on private Lightning names (lightning 2.6, pinned in
pyproject.toml), `_SubprocessScriptLauncher`, `_launch_process_observer` and `_set_num_threads_if_needed`,
which an upgrade may rename. tests/test_distributed.py and the DDP runs of tests/test_scaling.py fail then.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from lightning.fabric.strategies.launchers.subprocess_script import _launch_process_observer
from lightning.fabric.utilities.distributed import _set_num_threads_if_needed
from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher

from mlplab.distributed import _saved_env, _saved_threads, _started, in_sweep, job_command

log = logging.getLogger(__name__)


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
        if not _saved_threads:
            _saved_threads.append(torch.get_num_threads())
            _saved_env.setdefault("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS"))
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
            _saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value
        hydra_cfg = HydraConfig.get()
        for local_rank in range(1, self.num_processes):
            command = job_command(local_rank, self.entry_point)
            log.debug("Starting rank %d: %s", local_rank, " ".join(command))
            process = subprocess.Popen(
                command, env={**os.environ, "LOCAL_RANK": str(local_rank)}, cwd=hydra_cfg.runtime.cwd
            )
            self.procs.append(process)
            _started.append((process, f"{hydra_cfg.job.name}_rank{local_rank}.log"))

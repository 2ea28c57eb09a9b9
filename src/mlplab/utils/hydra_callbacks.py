"""Hydra callbacks (configured under `hydra.callbacks` in conf/hydra/default.yaml)."""

from __future__ import annotations

from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, read_write


class PinSweepDir(Callback):
    """Resolves a multirun's folder once, at sweep start, and gives every job that same folder.

    `hydra.sweep.dir` holds `${task_name}`, which each data config sets, and each job resolves the
    folder again with its own config: `-m data=mnist,fashion_mnist` would scatter its jobs over two
    folders. (Setting Hydra's config here also lets the folder name use `${hydra:...}`.) Here the sweep's base config names the folder, and a `hydra.sweep.dir` override
    (the one a user may pass) hands it to every job; each job's own `task_name` stays its data set's.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        HydraConfig.instance().set_config(config)
        sweep_dir = str(config.hydra.sweep.dir)
        with read_write(config.hydra):
            config.hydra.sweep.dir = sweep_dir
            quoted = sweep_dir.replace("\\", "\\\\").replace("'", "\\'")
            config.hydra.overrides.hydra.append(f"hydra.sweep.dir='{quoted}'")

"""Hydra callbacks (configured under `hydra.callbacks` in conf/hydra/default.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, read_write

from mlplab.utils.overrides import quoted_override


def saved_overrides(folder: str | Path) -> list[str]:
    """The overrides Hydra saved in a job folder's `.hydra/overrides.yaml` (empty when there is none)."""
    overrides_file = Path(folder) / ".hydra" / "overrides.yaml"
    return [str(o) for o in OmegaConf.load(overrides_file)] if overrides_file.is_file() else []


def claim_new_folder(path: str | Path) -> Path:
    """Create `path`, or `path_2`, `path_3`, ... when taken, and return the one created.

    `mkdir` fails when the folder exists, so of two processes claiming the same name only one gets it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate, n = path, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            n += 1
            candidate = path.with_name(f"{path.name}_{n}")


def _set_by_user(config: DictConfig, key: str) -> bool:
    return any(override.split("=", 1)[0].lstrip("+~") == key for override in config.hydra.overrides.hydra)


class ClaimOutputFolder(Callback):
    """Gives every run and every multirun an output folder of its own, resolved once.

    The default folder names end in the start time, to the second: two runs started in the same second (a
    script starting several) would share a folder and overwrite each other's config and checkpoints. The
    folder is created here, or `<time>_2` when another run holds it. A folder the user names
    (`hydra.run.dir=...`, `hydra.sweep.dir=...`) is used as given.

    A multirun's folder holds `${task_name}`, which each data config sets, and each job would resolve it
    again with its own config: `-m data=mnist,fashion_mnist` would scatter its jobs over two folders. Here
    the sweep's base config names the folder, and a `hydra.sweep.dir` override hands it to every job
    (launched in this process or elsewhere); each job's own `task_name` stays its data set's.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not _set_by_user(config, "hydra.run.dir"):
            HydraConfig.instance().set_config(config)
            with read_write(config.hydra):
                config.hydra.run.dir = str(claim_new_folder(config.hydra.run.dir))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        HydraConfig.instance().set_config(config)  # the folder's name may use `${hydra:...}`
        sweep_dir = str(config.hydra.sweep.dir)
        if not _set_by_user(config, "hydra.sweep.dir"):
            sweep_dir = str(claim_new_folder(sweep_dir))
        with read_write(config.hydra):
            config.hydra.sweep.dir = sweep_dir
            config.hydra.overrides.hydra.append(quoted_override("hydra.sweep.dir", sweep_dir))

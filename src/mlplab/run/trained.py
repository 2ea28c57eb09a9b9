"""A trained run rebuilt from its checkpoint alone: its config, data module and network (eval.py, predict.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mlplab.checkpoints.find import trained_checkpoint
from mlplab.checkpoints.io import load_checkpoint
from mlplab.checkpoints.same_run import check_fits
from mlplab.data.tensor_datamodule import TensorDataModule
from mlplab.models.module import SupervisedModule
from mlplab.run.build import build_datamodule, build_module


@dataclass
class TrainedRun:
    ckpt_path: Path  # the checkpoint file (a run folder's best)
    checkpoint: dict[str, Any]
    cfg: DictConfig  # the run's config, with this machine's data folders
    datamodule: TensorDataModule  # built, not set up: no data read yet
    module: SupervisedModule  # with the checkpoint's weights


def load_trained_run(ckpt_path: str | Path, paths: DictConfig, data: DictConfig | None = None) -> TrainedRun:
    """Rebuild the run stored in `ckpt_path` (a .ckpt file or a run folder) and load its weights.

    `ckpt_path=last`: the single run most recently saved under `paths.output_root`. `paths`: this machine's
    `paths` (output_root, data_dir, data_mirror); `data`: another data set's config instead of the run's.
    """
    path = trained_checkpoint(ckpt_path, paths.output_root)
    checkpoint = load_checkpoint(path)
    run_cfg = OmegaConf.create(checkpoint["hyper_parameters"])
    # data lives where this machine keeps it, not where the training machine did
    run_cfg.paths = OmegaConf.merge(run_cfg.paths, {k: paths[k] for k in ("data_dir", "data_mirror")})
    if data:  # another data set; its ${seed} and ${paths...} resolve in the run's config
        run_cfg.data = OmegaConf.to_container(data, resolve=False)
    datamodule = build_datamodule(run_cfg)
    module = build_module(run_cfg, datamodule)
    check_fits(checkpoint, module, run_cfg, path)
    module.load_state_dict(checkpoint["state_dict"])
    return TrainedRun(path, checkpoint, run_cfg, datamodule, module)

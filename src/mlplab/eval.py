"""Evaluate a checkpoint on the test split of the data set it was trained on."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from mlplab.utils.config import CONFIG_DIR
from mlplab.utils.instantiate import build_datamodule, build_module
from mlplab.utils.report import format_metrics, metric_values

log = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """The checkpoint is missing, unreadable, or not an mlplab checkpoint."""


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with `weights_only=True` (tensors and plain containers, no code)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"ckpt_path={str(path)!r}: no such file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"ckpt_path={str(path)!r} is not a readable PyTorch checkpoint: {str(e).splitlines()[0]}") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "data" not in checkpoint.get("hyper_parameters", {}):
        raise CheckpointError(f"ckpt_path={str(path)!r} is not an mlplab training checkpoint (no state_dict and run config)")
    return checkpoint


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Rebuild the run stored in `cfg.ckpt_path`, load its weights and test it."""
    checkpoint = load_checkpoint(cfg.ckpt_path)
    run_cfg = OmegaConf.create(checkpoint["hyper_parameters"])
    # data lives where this machine keeps it, not where the training machine did
    run_cfg.paths = OmegaConf.merge(run_cfg.paths, {k: cfg.paths[k] for k in ("data_dir", "data_mirror")})
    datamodule = build_datamodule(run_cfg)
    module = build_module(run_cfg, datamodule)
    try:
        module.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"ckpt_path={cfg.ckpt_path!r} does not fit the network its config describes: {e}") from None
    trainer = instantiate(cfg.trainer)
    trainer.test(module, datamodule=datamodule, verbose=False)
    metrics = metric_values(trainer)
    log.info("Test metrics of %s:\n%s", cfg.ckpt_path, format_metrics(metrics, prefix="test/"))
    return metrics


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()

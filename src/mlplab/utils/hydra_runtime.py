"""What Hydra's runtime says of the current process: a single run, a sweep job, or no Hydra at all."""

from __future__ import annotations

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig


def hydra_config() -> DictConfig | None:
    """The `hydra` node of the running job; None outside a Hydra run."""
    return HydraConfig.get() if HydraConfig.initialized() else None


def in_sweep() -> bool:
    """True inside a job of a Hydra multirun (any launcher or sweeper)."""
    hydra = hydra_config()
    return hydra is not None and hydra.get("mode") == RunMode.MULTIRUN

"""Whether `trainer.devices` and `trainer.accelerator` name devices this machine has."""

from __future__ import annotations

import os

import torch
from omegaconf import DictConfig, OmegaConf

from mlplab.config.rules import require


def _devices_here(accelerator: str) -> tuple[str, int] | None:
    """(accelerator, how many devices of it this machine has); None for accelerators not checked here."""
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "mps" if mps else "cpu"
    if accelerator in ("gpu", "cuda"):
        return accelerator, torch.cuda.device_count()
    if accelerator == "mps":
        return accelerator, int(mps)
    if accelerator == "cpu":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return accelerator, cores
    return None


def check_devices(trainer: DictConfig) -> None:
    """`trainer.devices` must name devices this machine has (a count, a list of indices, "auto" or -1)."""
    devices = trainer.get("devices", "auto")
    here = _devices_here(str(trainer.get("accelerator", "auto")))
    if here is None or devices in ("auto", -1, "-1", None):
        return
    accelerator, available = here
    require(
        available > 0,
        "trainer.accelerator",
        accelerator,
        f"this machine has no {accelerator} device; use accelerator=cpu (or auto)",
    )
    valid = (
        f"{accelerator} has {available} device(s) here: use a count from 1 to {available}, "
        f"a list of indices below {available}, or auto"
    )
    if isinstance(devices, str) and "," in devices:
        devices = [int(i) for i in devices.split(",") if i.strip()]
    if isinstance(devices, str) and devices.strip().isdigit():
        devices = int(devices)
    if isinstance(devices, int):
        require(1 <= devices <= available, "trainer.devices", devices, valid)
    else:
        indices = list(devices) if OmegaConf.is_list(devices) or isinstance(devices, (list, tuple)) else [devices]
        require(
            len(indices) > 0 and all(isinstance(i, int) and 0 <= i < available for i in indices),
            "trainer.devices",
            indices,
            valid,
        )

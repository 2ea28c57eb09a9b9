"""Which GPUs each parallel sweep job gets: the devices split into groups of `devices_per_job`, one group per job
slot, given to the slot's worker process as its CUDA_VISIBLE_DEVICES (hydra/launcher=parallel)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

VISIBLE = "CUDA_VISIBLE_DEVICES"
GPU_ACCELERATORS = ("gpu", "cuda")


def visible_gpus(accelerator: Any) -> list[str]:
    """The GPUs this process may give to jobs that run on `accelerator`: none for the CPU (or `auto` without a GPU),
    else the ones CUDA_VISIBLE_DEVICES names, else every GPU torch sees."""
    accelerator = str(accelerator or "").lower()
    if accelerator not in (*GPU_ACCELERATORS, "auto"):
        return []
    import torch

    if not torch.cuda.is_available():
        return []  # `gpu` without one: the jobs fail with the config check's message, each on its own
    named = os.environ.get(VISIBLE)
    if named is not None:
        return [device.strip() for device in named.split(",") if device.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]


def devices_per_job(setting: Any, trainer_devices: Any) -> int:
    """`hydra.launcher.devices_per_job`, or by default the jobs' `trainer.devices` when it is a number (a DDP job
    with trainer.devices=2 takes two), else 1."""
    value = setting if setting is not None else trainer_devices
    try:
        count = int(value)
    except (TypeError, ValueError):
        count = 1  # trainer.devices=auto, -1 or a list: one device per job unless devices_per_job says otherwise
    if setting is not None and count < 1:
        raise ValueError(f"hydra.launcher.devices_per_job={setting} is invalid: must be an integer >= 1")
    return max(count, 1)


def device_groups(devices: Sequence[Any], per_job: int) -> list[str]:
    """`devices` in groups of `per_job`, each as a CUDA_VISIBLE_DEVICES value ("0", "2,3"); devices left over
    (5 devices in pairs) are not used. ValueError when there are fewer devices than one job needs."""
    devices = [str(device) for device in devices]
    if devices and len(devices) < per_job:
        raise ValueError(
            f"hydra.launcher.devices_per_job={per_job} is invalid: only {len(devices)} device(s) to share "
            f"({','.join(devices)}); lower it, or give the launcher more devices (hydra.launcher.devices=[...])"
        )
    return [",".join(devices[i : i + per_job]) for i in range(0, len(devices) - per_job + 1, per_job)]


def slot_devices(launcher_settings: Any, trainer: Any) -> list[str]:
    """One CUDA_VISIBLE_DEVICES value per job slot, from the launcher's `devices` (null: the visible GPUs when the
    jobs use one; a list: those device ids, also to test on a machine without GPUs; []: none) and
    `devices_per_job`; [] when the jobs get no devices (CPU sweeps: `n_jobs` slots as before)."""
    setting = launcher_settings.get("devices")
    devices = visible_gpus(trainer.get("accelerator")) if setting is None else list(setting)
    per_job = devices_per_job(launcher_settings.get("devices_per_job"), trainer.get("devices"))
    return device_groups(devices, per_job) if devices else []

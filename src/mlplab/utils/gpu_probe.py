"""Undo a per-step cost that importing Lightning adds on machines without an NVIDIA driver."""

from __future__ import annotations

import ctypes
import os

NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"


def skip_nvml_probe_without_driver() -> bool:
    """Drop Lightning's `PYTORCH_NVML_BASED_CUDA_CHECK=1` when there is no NVIDIA driver; True if dropped.

    Lightning sets it on import so that asking "is there a GPU?" doesn't initialise CUDA before a fork.
    Then `torch.cuda.is_available()` tries to load NVML on every call, and Adam, AdamW and RMSprop ask on
    every step: ~0.1 ms a step on a CPU machine (more under load), for nothing, since without a driver
    there is no CUDA to initialise. Where the driver exists the setting is left alone.
    """
    if os.environ.get(NVML_CHECK) != "1":
        return False
    try:
        ctypes.CDLL("libnvidia-ml.so.1")  # what torch loads for the check
    except OSError:
        del os.environ[NVML_CHECK]
        return True
    return False

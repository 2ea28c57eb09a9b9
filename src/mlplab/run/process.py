"""What an entry point (train.py, eval.py, predict.py) sets up once for its whole process, before any run in it:
no per-step NVML probe on machines without an NVIDIA driver, no third-party messages that say nothing, and a
user's mistake reported as its message alone."""

from __future__ import annotations

import ctypes
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from mlplab.checkpoints.io import CheckpointError
from mlplab.utils.errors import ConfigError


def prepare_process() -> None:
    # importing Lightning set PYTORCH_NVML_BASED_CUDA_CHECK; on machines without a driver it slows every step
    skip_nvml_probe_without_driver()
    silence_third_party_noise()


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


# Deprecation warnings these packages raise from their own code (Lightning calling torch's deprecated LeafSpec,
# ...): only their maintainers can act on them. A warning is attributed to the module that caused it (its
# stacklevel), so one about the user's own call is attributed to the user's module and still shows.
THIRD_PARTY = r"(lightning|lightning_fabric|lightning_utilities|pytorch_lightning|torchmetrics|wandb)(\.|$)"
DEPRECATIONS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)
# Lightning's info messages say what mlplab's own lines say better, or nothing a user acts on: "GPU available: False",
# "TPU available", its cloud logger's "💡 Tip", "`Trainer.fit` stopped: `max_epochs=5` reached", "Restoring states
# from the checkpoint path". Its warnings stay.
LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric")
# Warnings about what mlplab does on purpose:
EXPECTED_WARNINGS = (
    # the epoch metrics are torchmetrics objects, which synchronise themselves across processes
    r"It is recommended to use `self.log\(.*sync_dist=True\)",
    # a resume writes into a new folder by design (mlplab.checkpoints.resume); the old best is compared with
    # when it still exists (mlplab.checkpoints.callback), and starts afresh when it is gone: what this says at length
    r"The dirpath has changed from",
)


def silence_third_party_noise() -> None:
    """Install the filters (process-wide; again is harmless)."""
    for category in DEPRECATIONS:
        warnings.filterwarnings("ignore", category=category, module=THIRD_PARTY)
    for message in EXPECTED_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    for name in LIGHTNING_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


# Errors whose message says all the user needs: what is wrong and what to do. A traceback above it is noise.
USER_ERRORS = (ConfigError, CheckpointError)


@contextmanager
def short_user_errors() -> Iterator[None]:
    """Inside an entry point's Hydra main: a ConfigError (CheckpointError) ends the process with exit status 1 and
    `ConfigError: <message>` alone on stderr, instead of Hydra's traceback; HYDRA_FULL_ERROR=1 keeps everything."""
    try:
        yield
    except USER_ERRORS as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":  # Hydra's own test of the variable
            raise
        # SystemExit passes through Hydra's job runner and its error printer (they catch Exception)
        raise SystemExit(f"{type(error).__name__}: {error}") from None

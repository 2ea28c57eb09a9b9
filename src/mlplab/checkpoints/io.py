"""Reading and writing checkpoint files: atomic saves, and loads that refuse what isn't an mlplab checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from mlplab.utils.files import atomic_write

LAST = "last.ckpt"


class CheckpointError(ValueError):
    """The checkpoint is missing, unreadable, not an mlplab checkpoint, or doesn't fit the run."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Saves each checkpoint to a temporary file in its own folder, then renames it into place.

    Lightning's own save goes through fsspec, which writes the temporary file to the system temp
    folder: when that is another file system (a node's /tmp, outputs on shared storage) the final move
    is a copy, and a job killed during it leaves a truncated `last.ckpt`.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        if "://" in str(path):  # remote storage: fsspec's transaction is the atomic way there
            return super().save_checkpoint(checkpoint, path, storage_options)
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options")
        with atomic_write(path) as f:
            torch.save(checkpoint, f)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read an mlplab checkpoint with `weights_only=True` (tensors and plain containers, no code)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"ckpt_path={str(path)!r}: no such file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"ckpt_path={str(path)!r} is not a readable PyTorch checkpoint: {first_line}") from None
    if (
        not isinstance(checkpoint, dict)
        or "state_dict" not in checkpoint
        or "data" not in checkpoint.get("hyper_parameters", {})
    ):
        raise CheckpointError(
            f"ckpt_path={str(path)!r} is not an mlplab training checkpoint (no state_dict and run config)"
        )
    return checkpoint

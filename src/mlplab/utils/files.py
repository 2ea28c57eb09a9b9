"""Writing files so that nothing is ever half-written, and checking that a folder can be written at all."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

from mlplab.utils.errors import ConfigError

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Write `path` all at once: into a temporary file beside it, then renamed over it.

    Readers, a crash or a kill see the old file or the new one, never a mix; the temporary file is in
    the same folder so the rename stays on one file system (a rename across file systems is a copy).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` atomically (see atomic_write)."""
    with atomic_write(path, "w") as f:
        f.write(text)


def write_json(path: str | Path, data: Any) -> None:
    """Write `data` to `path` atomically as standard JSON (NaN and infinities are refused: give them a JSON form first)."""
    write_text(path, json.dumps(data, indent=2, default=str, allow_nan=False) + "\n")


def check_writable(folder: str | Path, key: str = "paths.output_dir") -> None:
    """Raise ConfigError unless files can be created in `folder` (made if missing)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise ConfigError(
            f"{key}={str(folder)!r} is invalid: it cannot be written ({type(e).__name__}: {e.strerror or e}). "
            "Choose a writable folder: hydra.run.dir=<folder> for one run, paths.output_root=<folder> for all."
        ) from None

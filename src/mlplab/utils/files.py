"""Writing files so that nothing is ever half-written, and checking that a folder can be written at all."""

from __future__ import annotations

import glob
import json
import os
import tempfile
import time
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
    the same folder so the rename stays on one file system (a rename across file systems is a copy). Its name holds
    the writer's pid: what a kill leaves, remove_stale_temporaries removes later.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp")
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporary files atomic_write left beside `path` when its writer was killed mid-write: those whose
    writer (the pid in the name) is no longer alive, or older than a day. Returns the files removed."""
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = tmp.name[len(path.name) + 2 :].split("-", 1)[0]
        try:
            stale = not pid.isdigit() or not _alive(int(pid)) or time.time() - tmp.stat().st_mtime > 86400
            if stale and tmp.is_file():
                tmp.unlink()
                removed.append(tmp)
        except FileNotFoundError:  # its writer renamed it meanwhile
            continue
    return removed


def write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` atomically (see atomic_write)."""
    with atomic_write(path, "w") as f:
        f.write(text)


def write_json(path: str | Path, data: Any) -> None:
    """Write `data` to `path` atomically as standard JSON (NaN and infinities are refused: give them a JSON form first)."""
    write_text(path, json.dumps(data, indent=2, default=str, allow_nan=False) + "\n")


def check_writable(
    folder: str | Path,
    key: str = "paths.output_dir",
    hint: str = "hydra.run.dir=<folder> for one run, paths.output_root=<folder> for all",
) -> None:
    """Raise ConfigError unless files can be created in `folder` (made if missing)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise ConfigError(
            f"{key}={str(folder)!r} is invalid: it cannot be written ({type(e).__name__}: {e.strerror or e}). "
            f"Choose a writable folder: {hint}."
        ) from None

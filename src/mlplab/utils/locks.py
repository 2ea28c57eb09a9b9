"""Folder locks that the kernel releases when their process dies (fcntl; SIGKILL included).

A sweep job holds `<job>/.job.lock` while it trains, so two reruns of one sweep never train it twice.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

LOCK_NAME = ".job.lock"

_held: dict[str, IO[str]] = {}  # folder -> its open, locked lock file (until release_all)


def is_held(folder: str | Path) -> bool:
    """Whether another process holds the folder's lock."""
    lock = Path(folder) / LOCK_NAME
    if not lock.is_file():
        return False
    with open(lock, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False


def claim(folder: str | Path) -> bool:
    """Take the folder's lock for this process (writing its pid into it); False when another process holds it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    f = open(folder / LOCK_NAME, "a+")  # noqa: SIM115 (held open while the job runs)
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return False
    f.truncate(0)
    f.write(f"{os.getpid()}\n")
    f.flush()
    _held[str(folder)] = f
    return True


def holder(folder: str | Path) -> str:
    """What the lock file says of its holder (its pid), for messages."""
    try:
        return (Path(folder) / LOCK_NAME).read_text().strip() or "pid unknown"
    except OSError:
        return "pid unknown"


def holds(folder: str | Path) -> bool:
    """Whether this process holds the folder's lock."""
    return str(Path(folder)) in _held


def release(folder: str | Path) -> None:
    """Release the folder's lock if this process holds it."""
    f = _held.pop(str(Path(folder)), None)
    if f is not None:
        f.close()


def release_all() -> None:
    """Release every lock this process holds."""
    while _held:
        _, f = _held.popitem()
        f.close()

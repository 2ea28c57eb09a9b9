"""What a DDP run changes in this process (the extra processes it started, environment variables, thread
count), kept so that `end_distributed_run` can leave the process as it found it for the next run or sweep job."""

from __future__ import annotations

import logging
import os
import subprocess

import torch

log = logging.getLogger(__name__)

_started: list[tuple[subprocess.Popen, str]] = []  # the extra processes of the current run, with their log's name
_saved_env: dict[str, str | None] = {}  # environment variables as they were before the run
_saved_threads: list[int] = []


def set_env(key: str, value: str) -> None:
    """Set an environment variable for this run; end_distributed_run restores its value from before the run."""
    _saved_env.setdefault(key, os.environ.get(key))
    os.environ[key] = value


def keep_threads_and_env(key: str) -> None:
    """Remember this process's thread count and `key`'s value once per run (restored by end_distributed_run)."""
    if not _saved_threads:
        _saved_threads.append(torch.get_num_threads())
        _saved_env.setdefault(key, os.environ.get(key))


def started(process: subprocess.Popen, log_name: str) -> None:
    """Note an extra process of this run (end_distributed_run waits for it) and the log file it writes."""
    _started.append((process, log_name))


def end_distributed_run(failed: bool = False) -> list[str]:
    """Wait for (after a failure: briefly, then stop) the extra processes this run started, close its process
    group and restore the environment, so the next run in this process starts afresh. A no-op without DDP.

    Returns a line for each extra process that failed by itself (exit code, log file): the reason may be there.
    """
    notes = []
    for process, log_name in _started:
        try:
            code = process.wait(timeout=5 if failed else 60)
        except subprocess.TimeoutExpired:
            process.kill()  # after a failure it may wait forever in a collective its failed peer never joins
            process.wait()
            continue
        if code:
            notes.append(f"a DDP process exited with code {code}: see {log_name}")
            if not failed:
                log.warning("After this run %s", notes[-1])
    _started.clear()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    for key, value in _saved_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    _saved_env.clear()
    if _saved_threads:
        torch.set_num_threads(_saved_threads.pop())
    return notes

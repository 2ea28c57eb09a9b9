"""Stops by a signal, in whatever phase a run is: SIGTERM (SLURM, `kill`) exits 143, Ctrl-C (SIGINT) 130.

`handled()` (around a whole run, in train.py's main) gives both signals one meaning from start-up to the
end: the run stops, logs one line saying which signal in which phase, and its run_record.json says
`interrupted`, the signal and the phase. Training batches are the one place a stop waits:
ResumableCheckpoint lets the batch finish and saves `last.ckpt`, so the run resumes exactly (it tells
`note` what it received). Everywhere else (start-up, data, test, baselines, pictures) nothing is worth
finishing, since every file is written atomically, so the stop is raised at once.

The phase comes from mlplab.run.phases (`track_phases`): the data module's loading, a callback that follows fit,
validation and test, and the hooks of the baselines and picture callbacks. Every handler for the stop signals is
installed through `install_handlers` (or `handlers`), here.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
PHASES = ("start-up", "data", "fit", "validation", "test", "baselines", "pictures")

_phase = "start-up"
_received: tuple[int, str] | None = None  # (signal, phase it came in) of the first stop signal of this run


class Stopped(SIGTERMException):
    """The run was stopped by `signum` in `phase`; its exit code is the shell's for the signal (128 + signum).

    A SystemExit (Lightning's SIGTERMException, so that ResumableCheckpoint saves on it during fit): no
    `except Exception` catches it, Hydra lets it through, and Python exits with its code without a traceback.
    """

    def __init__(self, signum: int, phase: str) -> None:
        super().__init__(128 + signum)
        self.signum, self.phase = signum, phase

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    def __str__(self) -> str:
        return f"stopped by {self.signal_name} during {self.phase} (exit code {self.code})"


Handler = Callable[[int, "FrameType | None"], Any]


def install_handlers(handler: Handler) -> dict[int, Any]:
    """Make `handler` handle SIGTERM and SIGINT; returns the handlers it replaced, for `restore_handlers`.

    Signals reach the main thread only: called from another thread it changes nothing and returns {}.
    """
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}


def restore_handlers(before: dict[int, Any]) -> None:
    """Put back the handlers `install_handlers` replaced."""
    for signum, handler in before.items():
        signal.signal(signum, handler)


@contextmanager
def handlers(handler: Handler) -> Iterator[None]:
    """`handler` handles SIGTERM and SIGINT in the block; the handlers from before are restored after it."""
    before = install_handlers(handler)
    try:
        yield
    finally:
        restore_handlers(before)


def phase() -> str:
    """The phase the run is in now (one of PHASES)."""
    return _phase


@contextmanager
def in_phase(name: str) -> Iterator[None]:
    """Run the block in phase `name`, then go back to the phase before."""
    global _phase
    before, _phase = _phase, name
    try:
        yield
    finally:
        _phase = before


def set_phase(name: str) -> None:
    """The run is in phase `name` from now on (mlplab.run.phases follows Lightning's hooks)."""
    global _phase
    _phase = name


def forget_signals() -> None:
    """A signal before this was acted on already: what is pending from here on is this run's."""
    global _received
    _received = None


def note(signum: int) -> None:
    """Remember that `signum` came, and in which phase (the first stop signal of the run counts)."""
    global _received
    if _received is None:
        _received = (signum, _phase)


def _stop_now(signum: int, frame: FrameType | None) -> None:
    if _received is not None:
        log.warning("%s again: already stopping", signal.Signals(signum).name)
        return
    note(signum)
    raise Stopped(signum, _phase)


def raise_pending() -> None:
    """Raise the stop a signal asked for when nobody acted on it yet (it came during the last training batch or
    the last validation, after which ResumableCheckpoint has no batch end left to stop at)."""
    if _received is not None:
        raise Stopped(*_received)


@contextmanager
def handled() -> Iterator[None]:
    """Make SIGTERM and SIGINT stop the run in the block (see the module's docstring); restore the handlers after.

    Restoring also undoes Lightning's `SIG_IGN` for SIGINT after a KeyboardInterrupt, so the next job of a sweep
    in this process can still be stopped with Ctrl-C.
    """
    global _phase, _received
    _phase, _received = "start-up", None
    with handlers(_stop_now):
        yield


def received() -> int | None:
    """The stop signal this run (or sweep) received, None when none came."""
    return _received[0] if _received else None


def pending() -> bool:
    """Whether a stop signal came that nobody acted on yet (in a `deferred()` block)."""
    return _received is not None


def _note_only(signum: int, frame: FrameType | None) -> None:
    if _received is not None:
        raise Stopped(*_received)  # the second signal: stop now (as a second Ctrl-C stops a single run at once)
    note(signum)


@contextmanager
def deferred() -> Iterator[None]:
    """In the block a stop signal is only noted: the code checks `pending()` where it can save and stop cleanly
    (a stacked fit, at the end of a training batch). A second signal stops at once."""
    with handlers(_note_only):
        yield


def stop_behind(error: BaseException) -> Stopped | None:
    """The stop a signal caused, when one is behind `error` (also Lightning's exit 1 after a second Ctrl-C), else None."""
    if isinstance(error, Stopped):
        return error
    if _received is not None:
        return Stopped(*_received)
    if isinstance(error, KeyboardInterrupt):
        return Stopped(signal.SIGINT, _phase)
    if isinstance(error, SIGTERMException):  # Lightning's own, from its SIGTERM handler
        return Stopped(signal.SIGTERM, _phase)
    return None

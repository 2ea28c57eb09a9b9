"""Lightning's ModelCheckpoint, extended so that an interrupted run loses nothing and resumes exactly."""

from __future__ import annotations

import logging
import os
import random
import signal
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from mlplab.checkpoints.resume import resume_hint
from mlplab.utils import stops

log = logging.getLogger(__name__)


def _rng_states() -> dict[str, Any]:
    """Every random number generator a run may draw from, as plain containers (loadable with weights_only)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
    }
    if torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    if "cuda" in states and torch.cuda.is_available():
        for device, state in enumerate(states["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state, device)


class ResumableCheckpoint(ModelCheckpoint):
    """ModelCheckpoint (same arguments) that also:

    - saves `last.ckpt` after every validation (Lightning 2.6 saves it only with a new best) and when SIGTERM (what SLURM sends before a kill) or Ctrl-C stops training. The
      signal is acted on at the end of the current training batch (validation is never cut short),
      so the checkpoint resumes exactly; a second Ctrl-C stops at once (and still saves);
    - stores the random number generators' states, so dropout continues as if never stopped;
    - resumed into a new run folder, keeps the best checkpoint of the run it resumes (Lightning forgets
      it when the folder changes), so "best" means best over the whole run. The old run's files are
      never deleted.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stop_signal: int | None = None
        self._handlers: dict[int, Any] = {}
        self._interrupt_saved_at: int | None = None
        self._stop_pending = False  # last.ckpt saved at a batch's end: stop before anything else runs

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._stop_signal, self._interrupt_saved_at, self._stop_pending = None, None, False
        # replaces Lightning's SIGTERM handler while training: Lightning would also stop mid-validation
        self._handlers = stops.install_handlers(self._request_stop)

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        stops.note(signum)  # the run's record and exit code say which signal stopped it, and in which phase
        if signum == signal.SIGINT and self._stop_signal is not None:
            raise KeyboardInterrupt  # the second Ctrl-C: stop now
        self._stop_signal = signum
        log.warning(
            "%s: stopping at the end of this training batch and saving a checkpoint%s",
            signal.Signals(signum).name,
            " (Ctrl-C again to stop at once)" if signum == signal.SIGINT else "",
        )

    def _restore_handlers(self) -> None:
        stops.restore_handlers(self._handlers)
        self._handlers = {}

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if batch_idx + 1 >= trainer.num_training_batches:
            return  # resumed from an epoch's last batch, Lightning would skip that epoch's validation: stop after the next
        stop = self._stop_signal is not None
        if (
            trainer.world_size > 1
        ):  # every rank stops at the same batch (checked at log steps: a collective costs a sync)
            if trainer.global_step % trainer.log_every_n_steps:
                return
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if stop:
            self._save_interrupted(trainer)
            # Lightning logs the batch's step after the batch-end hooks: stop at the next hook, so the loggers hold
            # every step the checkpoint trained (a resume logs from the step after it)
            self._stop_pending = True

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._stop_if_saved()

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop_if_saved()  # a validation within the epoch (val_check_interval) would follow the batch

    def _stop_if_saved(self) -> None:
        if self._stop_pending:
            # Lightning's "stopped by a signal" (a SystemExit): on_exception hooks run, loggers are finalised, and
            # the process exits with the shell's code for the signal (143 for SIGTERM, 130 for Ctrl-C)
            raise SIGTERMException(128 + (self._stop_signal or signal.SIGTERM))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop_if_saved()  # the batch ended training (max_steps)
        self._save_last_after(super().on_train_epoch_end, trainer, pl_module, on_train_epoch_end=True)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save_last_after(super().on_validation_end, trainer, pl_module, on_train_epoch_end=False)

    def _save_last_after(
        self, hook: Any, trainer: L.Trainer, pl_module: L.LightningModule, on_train_epoch_end: bool
    ) -> None:
        """Lightning's hook, then `last.ckpt` if the hook saved none: Lightning 2.6 saves it only with a new best,
        and a job killed outright must resume from its last finished epoch (tests/checkpoints/test_resume.py: ..._not_its_best)."""
        hook(trainer, pl_module)
        skip = self._should_skip_saving_checkpoint(trainer)  # True once the hook saved at this step
        if self.save_last and not skip and self._should_save_on_train_epoch_end(trainer) == on_train_epoch_end:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_handlers()
        super().on_train_end(trainer, pl_module)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        try:
            stopped = isinstance(exception, (KeyboardInterrupt, SIGTERMException)) and trainer.state.fn == "fit"
            # a crash or a diverged run is not worth resuming; before the first step there is nothing to save
            if (
                stopped
                and self.dirpath is not None
                and trainer.global_step > 0
                and self._interrupt_saved_at != trainer.global_step
            ):
                self._save_interrupted(trainer)
        finally:
            self._restore_handlers()

    def _save_interrupted(self, trainer: L.Trainer) -> None:
        filepath = os.path.join(self.dirpath, self.CHECKPOINT_NAME_LAST + self.FILE_EXTENSION)
        self.last_model_path = filepath  # before saving: it is part of the saved state
        self._save_checkpoint(trainer, filepath)
        self._interrupt_saved_at = trainer.global_step
        if trainer.is_global_zero:
            log.warning(
                "Stopped at epoch %d, step %d: saved %s\nResume with: %s",
                trainer.current_epoch,
                trainer.global_step,
                filepath,
                resume_hint(Path(filepath).resolve().parents[1]),
            )

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "rng": _rng_states()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "rng" in state_dict:
            _set_rng_states(state_dict["rng"])
        saved_dir = state_dict.get("dirpath")
        best = state_dict.get("best_model_path")
        if saved_dir != self.dirpath and best and os.path.isfile(best):
            # the best so far lives in the old folder: compare with it (ModelCheckpoint never deletes outside its folder)
            state_dict = {**state_dict, "dirpath": self.dirpath}
        super().load_state_dict(state_dict)

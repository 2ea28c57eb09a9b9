"""One stack member: built as its single run would be, and finished as one (checkpoints, loggers, test, record).

A member is a sweep job of its own: `<sweep>/<job number>/` with `.hydra/`, `run_record.json`, `checkpoints/`
(its best on its own monitored metric, and `last.ckpt`, as single-run checkpoints), its loggers' files and runs,
`curves.png` and the test pictures. Its training metrics are kept during the stacked fit and written to its own
loggers when it finishes (one W&B run open at a time, as in a sweep of single runs); its test is the single run's
own test path (mlplab.run.lifecycle.test_best) with its own Trainer, callbacks and loggers.
"""

from __future__ import annotations

import copy
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import _save_config
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from mlplab.callbacks.drawing import save_png
from mlplab.callbacks.loss_curves import STAGES, LossCurves, curves_figure
from mlplab.checkpoints.io import LAST, AtomicCheckpointIO
from mlplab.data.tensor_datamodule import TensorDataModule
from mlplab.loggers.wandb import finish_run
from mlplab.models.module import SupervisedModule
from mlplab.run.build import build_callbacks, build_loggers, build_trainer
from mlplab.run.lifecycle import build_data_and_module, test_best
from mlplab.run.phases import track_phases
from mlplab.run.record import RunRecorder
from mlplab.utils.errors import DivergedError
from mlplab.utils.hydra_runtime import in_sweep

log = logging.getLogger(__name__)

STACKED_KEY = "mlplab_stacked"  # checkpoint key: which stack the member was trained in (for the curious)


def job_output_dir(job_cfg: DictConfig) -> Path:
    """The job's folder, `<hydra.sweep.dir>/<hydra.sweep.subdir>`, set as its runtime output dir (as run_job does)."""
    HydraConfig.instance().set_config(job_cfg)
    output_dir = Path(os.path.abspath(Path(str(job_cfg.hydra.sweep.dir)) / str(job_cfg.hydra.sweep.subdir)))
    with read_write(job_cfg.hydra.runtime), open_dict(job_cfg.hydra.runtime):
        job_cfg.hydra.runtime.output_dir = str(output_dir)
    HydraConfig.instance().set_config(job_cfg)
    return output_dir


@dataclass
class Member:
    """A stack member: its job, its resolved run config, its own module, data module and record."""

    num: int  # the sweep's job number
    job_cfg: DictConfig  # the job's config with its hydra section (run_job gets it)
    cfg: DictConfig  # the run config, resolved for this job (its output folder, run name, ...)
    datamodule: TensorDataModule
    module: SupervisedModule
    recorder: RunRecorder
    checkpoint: ModelCheckpoint | None  # its checkpoint callback's settings: folder, names, monitor
    early_stopping: EarlyStopping | None  # its own early stopping: its patience counts its own epochs
    rows: list[tuple[int, dict[str, float]]] = field(default_factory=list)  # (step, metrics) for its loggers
    metrics: dict[str, float] = field(default_factory=dict)  # the last epoch's, as train.py keeps them
    best_score: float | None = None
    best_path: str | None = None
    global_step: int = 0
    diverged: str | None = None  # why it stopped, when its loss became NaN or inf
    stopped_epoch: int | None = None  # the epoch after which its early stopping stopped it

    @property
    def frozen(self) -> bool:
        """Whether it has stopped training (diverged or stopped early): its weights no longer change."""
        return self.diverged is not None or self.stopped_epoch is not None

    @property
    def output_dir(self) -> Path:
        return Path(self.cfg.paths.output_dir)

    @property
    def history(self) -> dict[str, dict[str, dict[int, float]]]:
        """Its epoch metrics per stage, as LossCurves keeps them."""
        history: dict[str, dict[str, dict[int, float]]] = {stage: {} for stage in STAGES}
        for _, row in self.rows:
            if "epoch" not in row:
                continue
            for key, value in row.items():
                stage, _, name = key.partition("/")
                if stage in history and name:
                    history[stage].setdefault(name.removesuffix("_epoch"), {})[int(row["epoch"])] = value
        return history


def start_member(job_cfg: DictConfig, num: int, shared: TensorDataModule | None) -> Member:
    """Build job `num` as its single run would: seed, data module, network and module (mlplab.run.lifecycle), record `running`.

    `shared`: a member's data module whose loaded splits this one uses (the members' data differ only in order).
    """
    output_dir = job_output_dir(job_cfg)
    output_dir.mkdir(parents=True, exist_ok=True)
    task_cfg = copy.deepcopy(job_cfg)
    with read_write(task_cfg), open_dict(task_cfg):
        del task_cfg["hydra"]
    hydra_output = output_dir / str(job_cfg.hydra.output_subdir)
    # written now (run_job writes them again when the member finishes): an interrupted member has them too
    _save_config(task_cfg, "config.yaml", hydra_output)
    _save_config(HydraConfig.instance().cfg, "hydra.yaml", hydra_output)
    _save_config(job_cfg.hydra.overrides.task, "overrides.yaml", hydra_output)

    cfg = OmegaConf.create(OmegaConf.to_container(task_cfg, resolve=True))
    # validated, seeded with the member's seed: its initial weights are exactly its single run's
    datamodule, module = build_data_and_module(cfg, shared)
    callbacks = build_callbacks(cfg)
    checkpoint = next((c for c in callbacks if isinstance(c, ModelCheckpoint)), None)
    early_stopping = next((c for c in callbacks if isinstance(c, EarlyStopping)), None)
    return Member(num, job_cfg, cfg, datamodule, module, RunRecorder(cfg), checkpoint, early_stopping)


def stops_early(member: Member, epoch: int) -> bool:
    """Whether the member's EarlyStopping stops it after `epoch`, decided by Lightning's own criteria on its own
    monitored metric (the check EarlyStopping makes when a single run's validation ends)."""
    callback = member.early_stopping
    if callback is None or callback.monitor not in member.metrics:
        return False
    # Lightning's private criteria (pinned lightning 2.6): the same patience, min_delta, thresholds and
    # check_finite as the single run; tests/sweeps/stacked/test_members.py compares a stack with single runs
    should_stop, reason = callback._evaluate_stopping_criteria(torch.tensor(member.metrics[callback.monitor]))
    if should_stop:
        callback.stopped_epoch = epoch
        member.stopped_epoch = epoch
        log.info("Stacked job #%d stops early after epoch %d: %s; the other members go on", member.num, epoch, reason)
    return should_stop


def _is_better(value: float, best: float | None, mode: str) -> bool:
    if not math.isfinite(value):
        return False
    return best is None or (value > best if mode == "max" else value < best)


def save_checkpoints(
    member: Member,
    state: dict[str, torch.Tensor],
    epoch: int,
    last_only: bool = False,
    training: dict[str, Any] | None = None,
) -> None:
    """Save the member's weights `state` as its single run's ModelCheckpoint would at the end of `epoch`: the best
    on its monitored metric (save_top_k=1: the previous best is removed) and `last.ckpt`. `training`: its loops,
    optimizer and scheduler states (mlplab.sweeps.stacked.resumable), so that the checkpoints resume as a single run's."""
    callback = member.checkpoint
    if callback is None:
        return
    member.module.network.load_state_dict(state)
    monitor = callback.monitor
    value = member.metrics.get(monitor) if monitor else None
    if not last_only and monitor and value is not None and _is_better(value, member.best_score, callback.mode):
        old = member.best_path
        member.best_score = value
        member.best_path = callback.format_checkpoint_name({**member.metrics, "epoch": epoch})
        _write(member, member.best_path, epoch, training)
        if old and old != member.best_path and Path(old).is_file():
            Path(old).unlink()
    if callback.save_last:
        _write(member, str(Path(callback.dirpath) / LAST), epoch, training)


def _write(member: Member, path: str, epoch: int, training: dict[str, Any] | None) -> None:
    callback = member.checkpoint
    assert callback is not None
    best = torch.tensor(member.best_score) if member.best_score is not None else None
    # the member's ModelCheckpoint holds what its single run's would at this point: its state is that one's
    callback.best_model_score = callback.current_score = callback.kth_value = best
    callback.best_model_path = callback.kth_best_model_path = member.best_path or ""
    callback.best_k_models = {member.best_path: best} if member.best_path else {}
    callback.last_model_path = str(Path(callback.dirpath) / LAST) if callback.save_last else ""
    checkpoint: dict[str, Any] = {
        "epoch": epoch,
        "global_step": member.global_step,
        "pytorch-lightning_version": L.__version__,
        "state_dict": member.module.state_dict(),
        "hyper_parameters": dict(member.module.hparams),
        "callbacks": {callback.state_key: callback.state_dict()},
        STACKED_KEY: {"job": member.num},
    }
    if member.early_stopping is not None:  # its patience so far, restored when it resumes as a single run
        checkpoint["callbacks"][member.early_stopping.state_key] = member.early_stopping.state_dict()
    checkpoint.update(training or {})
    checkpoint[type(member.datamodule).__qualname__] = member.datamodule.state_dict()  # as Lightning keeps it
    member.module.on_save_checkpoint(checkpoint)  # the training steps its epoch metrics have not counted yet
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    AtomicCheckpointIO().save_checkpoint(checkpoint, path)


def set_logging_step(trainer: L.Trainer, step: int) -> None:
    """Make `trainer` log at `step`, as a single run's trainer does after training `step` steps.

    Lightning keeps that count in a private attribute (pinned lightning 2.6; tests/test_upstream_internals.py):
    checked first, so that a rename fails here rather than silently adding a new attribute.
    """
    epoch_loop = trainer.fit_loop.epoch_loop
    if not hasattr(epoch_loop, "_batches_that_stepped"):
        raise RuntimeError(
            "lightning's fit_loop.epoch_loop._batches_that_stepped is gone (lightning "
            f"{L.__version__}): find the step counter its loggers use and change mlplab.sweeps.stacked.members"
        )
    epoch_loop._batches_that_stepped = step


def finish_member(member: Member, cfg: DictConfig) -> float | None:
    """The member's end, as a Hydra job (run_job calls it with `cfg`, its config): write its logged metrics to its own
    loggers, draw its curves, test its best checkpoint with its own Trainer, record it; return its objective."""
    failed = True
    try:
        loggers = build_loggers(cfg)
        for logger in loggers:  # what Lightning logs when a fit starts; its test logs it again, unchanged
            logger.log_hyperparams(member.module.hparams_initial)
        for step, row in member.rows:
            for logger in loggers:
                logger.log_metrics(row, step=step)
        if member.diverged:
            for logger in loggers:
                logger.save()
            log.warning("Job #%d diverged: %s", member.num, member.diverged)
            return member.recorder.failed(DivergedError(member.diverged))  # its W&B run ends failed, as a single run's
        trainer = build_trainer(cfg, build_callbacks(cfg), loggers)
        track_phases(trainer, member.datamodule)
        set_logging_step(trainer, member.global_step)  # test metrics go to the loggers where training ended
        curves = next((c for c in trainer.callbacks if isinstance(c, LossCurves)), None)
        if curves is not None:
            save_png(curves_figure(member.history), curves.path)
        metrics = test_best(cfg, trainer, member.module, member.datamodule, member.best_path, member.metrics)
        failed = False
        return member.recorder.completed(metrics)
    except Exception as error:
        objective = member.recorder.failed(error)
        if not in_sweep():
            raise
        log.exception("Job #%d failed (recorded in %s); the sweep goes on", member.num, member.recorder.path)
        return objective
    finally:
        finish_run(failed=failed)

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
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import _save_config
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from mlplab.callbacks.drawing import save_png
from mlplab.callbacks.loss_curves import STAGES, LossCurves, curves_figure
from mlplab.callbacks.optuna_pruning import OptunaPruning, trial_callbacks
from mlplab.callbacks.weights import FirstLayerWeights, linear_layers
from mlplab.checkpoints.io import LAST, AtomicCheckpointIO
from mlplab.checkpoints.resume import resume_hint
from mlplab.data.tensor_datamodule import TensorDataModule
from mlplab.loggers.wandb import finish_run
from mlplab.models.module import SupervisedModule
from mlplab.run.build import build_callbacks, build_loggers, build_trainer
from mlplab.run.lifecycle import build_data_and_module, test_best
from mlplab.run.phases import track_phases
from mlplab.run.record import RunRecorder, read_run_record
from mlplab.sweeps.stacked.stand_in import MemberTrainer
from mlplab.utils import locks, stops
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
    pruning: OptunaPruning | None  # an Optuna search's trial: reported to after each epoch, pruned by its pruner
    rows: list[tuple[int, dict[str, float]]] = field(default_factory=list)  # (step, metrics) for its loggers
    metrics: dict[str, float] = field(default_factory=dict)  # the last epoch's, as train.py keeps them
    best_score: float | None = None
    best_path: str | None = None
    global_step: int = 0
    diverged: str | None = None  # why it stopped, when its loss became NaN or inf
    stopped_epoch: int | None = None  # the epoch after which its early stopping (or its trial's pruner) stopped it
    finished_epoch: int | None = None  # its last epoch, once it trained all its trainer.max_epochs
    trainer: MemberTrainer | None = None  # what its callbacks see of its trainer (Lightning's own code decides)
    saving: tuple[int, dict[str, Any] | None] = (0, None)  # the epoch and training state a save writes now
    weights: list[tuple[int, torch.Tensor]] = field(default_factory=list)  # (epoch, first-layer weights) to draw
    # torch's CPU generator state once it was built (seeded, initialised): where its single run's random draws start
    rng_state: torch.Tensor | None = None

    @property
    def frozen(self) -> bool:
        """Whether it has stopped training (diverged, stopped early, pruned or trained all its epochs): its weights
        no longer change."""
        return self.diverged is not None or self.ended_epoch is not None

    @property
    def ended_epoch(self) -> int | None:
        """The last epoch it trained, once its training ended as its single run's would (early stopping, its trial's
        pruner, or its epochs done); None while it trains on, or when it diverged."""
        return self.stopped_epoch if self.stopped_epoch is not None else self.finished_epoch

    @property
    def pruned_at_epoch(self) -> int | None:
        """The epoch at which its trial's pruner pruned it, or None."""
        return self.pruning.pruned_at_epoch if self.pruning is not None else None

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
    rng_state = torch.get_rng_state()
    callbacks = build_callbacks(cfg)
    checkpoint = next((c for c in callbacks if isinstance(c, ModelCheckpoint)), None)
    early_stopping = next((c for c in callbacks if isinstance(c, EarlyStopping)), None)
    # a trial of mlplab's Optuna sweeper (the member's Hydra config, set by job_output_dir, names it): as train.py's
    pruning = next(iter(trial_callbacks(cfg)), None)
    member = Member(num, job_cfg, cfg, datamodule, module, RunRecorder(cfg), checkpoint, early_stopping, pruning)
    member.rng_state = rng_state
    member.trainer = MemberTrainer(lambda path: _write(member, path, *member.saving))
    return member


def claim_member(job_cfg: DictConfig) -> tuple[bool, float | None]:
    """Take the job's lock, as a basic sweep job does (mlplab.sweeps.resume.start_sweep_job): (whether to train it,
    the objective to report when not: held by another process, or completed by one since the sweep was planned)."""
    folder = job_output_dir(job_cfg)
    if not locks.claim(folder):
        log.warning("Job folder %s is held by another process (%s): not trained here", folder, locks.holder(folder))
        return False, None
    record = read_run_record(folder)
    if record and record.get("status") == "completed":
        locks.release(folder)
        log.info("Job %s is completed already: kept as it is", folder)
        return False, record.get("objective")
    return True, None


def stops_early(member: Member, epoch: int, min_epochs: int = 0) -> bool:
    """Whether the member stops after `epoch`: Lightning's own early stopping check on its own metrics (the check
    EarlyStopping makes when a single run's validation ends, strict and verbose included), then, in an Optuna
    search, its trial's report and pruner (the single run's OptunaPruning callback, in that order as in the single
    run); and, as Lightning's fit loop, not before `min_epochs` epochs (a stop asked for earlier stays asked for)."""
    callback, trainer = member.early_stopping, member.trainer
    assert trainer is not None
    if callback is not None:
        # private, pinned lightning 2.6 (tests/test_upstream_internals.py); sets trainer.should_stop and stopped_epoch
        callback._run_early_stopping_check(trainer.at(epoch, member.global_step, member.metrics))
    if member.pruning is not None:  # reports the member's monitored metric; sets trainer.should_stop when pruned
        member.pruning.on_validation_end(trainer.at(epoch, member.global_step, member.metrics), member.module)  # type: ignore[arg-type]
    if not trainer.should_stop or epoch + 1 < min_epochs:
        return False
    member.stopped_epoch = epoch
    if member.pruned_at_epoch is not None:
        reason = f"its trial was pruned at epoch {member.pruned_at_epoch}"
    else:
        reason = getattr(callback, "stopping_reason_message", None) or "its early stopping"
    log.info("Stacked job #%d stops early after epoch %d: %s; the other members go on", member.num, epoch, reason)
    return True


def save_checkpoints(
    member: Member,
    state: dict[str, torch.Tensor],
    epoch: int,
    last_only: bool = False,
    training: dict[str, Any] | None = None,
) -> None:
    """Save the member's weights `state` as its single run's ModelCheckpoint would at the end of `epoch`: Lightning's
    own top-k and last-checkpoint code decides the files (save_top_k, file names, versions, what is removed).
    `last_only`: only `last.ckpt`, as ResumableCheckpoint saves it at a stop signal. `training`: its loops, optimizer
    and scheduler states (mlplab.sweeps.stacked.resumable), so that the checkpoints resume as a single run's."""
    callback, trainer = member.checkpoint, member.trainer
    if callback is None or trainer is None:
        return
    member.module.network.load_state_dict(state)
    member.saving = (epoch, training)
    if last_only:
        path = str(Path(callback.dirpath) / LAST)
        callback.last_model_path = path  # before saving: it is part of the saved state
        _write(member, path, epoch, training)
        return
    trainer.at(epoch, member.global_step, member.metrics)
    candidates = {**trainer.callback_metrics, "epoch": torch.tensor(epoch), "step": torch.tensor(member.global_step)}
    # private, pinned lightning 2.6 (tests/test_upstream_internals.py): what its on_validation_end saves
    callback._save_topk_checkpoint(trainer, candidates)
    callback._save_last_checkpoint(trainer, candidates)
    member.best_path = callback.best_model_path or None
    score = callback.best_model_score
    member.best_score = float(score) if score is not None and callback.monitor else None


def _write(member: Member, path: str, epoch: int, training: dict[str, Any] | None) -> None:
    callback = member.checkpoint
    assert callback is not None
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


def keep_weights_picture(member: Member, state: dict[str, torch.Tensor], epoch: int, last: bool) -> None:
    """Keep the member's first-layer weights after `epoch` when its FirstLayerWeights would draw them then (every
    `every_n_epochs` and the last epoch); they are drawn when it finishes, with its own Trainer."""
    picture = (member.cfg.get("callbacks") or {}).get("weights")
    if not picture or picture.get("_target_") != f"{FirstLayerWeights.__module__}.FirstLayerWeights":
        return
    if (epoch + 1) % int(picture.get("every_n_epochs", 1)) == 0 or last:
        first = next(name for name in state if name.endswith(".weight"))
        member.weights.append((epoch, state[first].detach().cpu().clone()))


def _draw_weights(member: Member, trainer: L.Trainer) -> None:
    callback = next((c for c in trainer.callbacks if isinstance(c, FirstLayerWeights)), None)
    if callback is None or not member.weights:
        return
    layer = linear_layers(member.module)[0]
    kept = layer.weight.detach().clone()
    with torch.no_grad():
        for epoch, weight in member.weights:
            layer.weight.copy_(weight)
            callback.draw(trainer, member.module, epoch)
        layer.weight.copy_(kept)


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
        loggers = write_rows(member, cfg)
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
        _draw_weights(member, trainer)  # after its test: the trainer knows its data module then
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


def write_rows(member: Member, cfg: DictConfig) -> list[Logger]:
    """The member's own loggers, holding its hyperparameters and every row it logged in the stack."""
    loggers = build_loggers(cfg)
    for logger in loggers:  # what Lightning and the module log when a fit starts; its test logs them again, unchanged
        logger.log_hyperparams(member.module.hparams_initial)
        logger.log_metrics(member.module.size_metrics(), step=0)
    for step, row in member.rows:
        for logger in loggers:
            logger.log_metrics(row, step=step)
    return loggers


def interrupt_member(member: Member, stop: stops.Stopped, cfg: DictConfig) -> None:
    """The end of a member a stop signal interrupted, as a Hydra job (its train.log): its rows to its loggers, as a
    stopped single run's loggers hold them, and the command that resumes it. Its record says `interrupted` already."""
    try:
        for logger in write_rows(member, cfg):
            logger.save()
    finally:
        finish_run(failed=True)
    last = Path(member.checkpoint.dirpath) / LAST if member.checkpoint else None
    log.warning(
        "Job #%d %s at epoch %d, step %d%s\nResume with: %s",
        member.num,
        stop,
        member.trainer.current_epoch if member.trainer else 0,
        member.global_step,
        f": saved {last}" if last and last.is_file() else "",
        resume_hint(member.output_dir),
    )

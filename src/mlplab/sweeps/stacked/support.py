"""What the stacked fit implements: every argument of Lightning's Trainer, ModelCheckpoint and EarlyStopping, and
every callback mlplab configures, is either honoured with the single run's meaning (HONOURED) or accepted only at
the value that does nothing (AT_DEFAULT); any other value, and any key or callback not listed, sends the job to run
alone. tests/sweeps/stacked/test_support.py checks that every argument of the installed Lightning is listed here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

# ---- the run's own keys that may differ between the members of one stack, each member with its own value and its
# single run's maths (the README's "What stacks" names these; grouping.py stacks jobs equal up to them)

PER_MEMBER: dict[str, str] = {
    "lr": "its own learning rate, and its own copy of the scheduler",
    "seed": "its initial weights, data order and random draws",
    "data.seed": "its data order",
    "optimizer.lr": "its own learning rate",
    "optimizer.weight_decay": "its own param group: Adam's and SGD's L2, AdamW's decoupled decay",
    "optimizer.momentum": "its own param group: SGD's (and RMSprop's) momentum buffer",
    "optimizer.nesterov": "its own param group",
    "model.dropout": "its own probability; on the CPU its single run's masks",
    "model.input_dropout": "its own probability; on the CPU its single run's masks",
    "data.label_smoothing": "its own task's loss, in training and validation",
    "data.max_shift": "its own shifts, then its dropout masks, from its own generator: on the CPU its single run's",
    "trainer.max_epochs": "its own epochs: it ends as its single run ends, the others go on",
    "scheduler": "any of conf/scheduler/ (the whole node), stepped as its single run steps it, over its own epochs",
    "model.hidden": (
        "its own widths, when every member has as many hidden layers (other depths stack apart): each layer padded to "
        "the widest member's, the padding inert (zero, never updated, not in its checkpoint); on the CPU its single "
        "run's outputs bit for bit"
    ),
}

# ---- lightning.Trainer

# each with what the stack does with it (the README's "What stacks" names these)
TRAINER_HONOURED: dict[str, str] = {
    "accelerator": "cpu, gpu, cuda or auto: the stack's device",
    "max_epochs": "per member: each trains its own (null: 1000; -1: until it stops early or diverges), the stack "
    "until its longest member ends",
    "min_epochs": "a member's early stopping stops it no sooner",
    "log_every_n_steps": "each member's train/loss and lr rows",
    "gradient_clip_val": "clipping by value, per member",
    "gradient_clip_algorithm": "value (clipping by norm runs alone)",
    "default_root_dir": "the member's own folder",
    "enable_progress_bar": "a stack prints one line per epoch instead",
    "enable_model_summary": "printed by the member's own Trainer",
    "limit_test_batches": "the member's test runs on its own Trainer",
    "limit_predict_batches": "no prediction in training",
    "inference_mode": "validation without gradients; the test on the member's own Trainer",
    "logger": "mlplab builds each member's own loggers",
    "callbacks": "mlplab builds each member's own callbacks",
    "plugins": "only mlplab.checkpoints.io.AtomicCheckpointIO: members' checkpoints are saved through it",
}
# accepted only at these values (Lightning's defaults and conf/train.yaml's); any other runs alone
TRAINER_AT_DEFAULT: dict[str, tuple[Any, ...]] = {
    "strategy": ("auto", None),
    "devices": (1, "1"),
    "num_nodes": (1,),
    "precision": ("32-true", "32", 32, None),
    "fast_dev_run": (False, 0),
    "max_steps": (-1, None),
    "min_steps": (None, 0),
    "max_time": (None,),
    "limit_train_batches": (None, 1.0),
    "limit_val_batches": (None, 1.0),
    "overfit_batches": (0, 0.0),
    "val_check_interval": (None, 1.0),
    "check_val_every_n_epoch": (1,),
    "num_sanity_val_steps": (0,),
    "enable_checkpointing": (None, True),
    "accumulate_grad_batches": (1,),
    "deterministic": (None, False),
    "benchmark": (None, False),
    "use_distributed_sampler": (True,),
    "profiler": (None,),
    "detect_anomaly": (False,),
    "barebones": (False,),
    "sync_batchnorm": (False,),
    "reload_dataloaders_every_n_epochs": (0,),
    "enable_autolog_hparams": (True,),
    "model_registry": (None,),
}
ACCELERATORS = ("cpu", "gpu", "cuda", "auto")
CHECKPOINT_IO = "mlplab.checkpoints.io.AtomicCheckpointIO"

# ---- callbacks: by their _target_, each argument honoured or accepted only at its default

CHECKPOINT_TARGETS = ("mlplab.checkpoints.callback.ResumableCheckpoint", "lightning.pytorch.callbacks.ModelCheckpoint")
EARLY_STOPPING_TARGETS = ("lightning.pytorch.callbacks.EarlyStopping",)
CHECKPOINT_HONOURED: dict[str, str] = {
    "dirpath": "the member's checkpoints folder",
    "filename": "Lightning's own file names, from the member's metrics",
    "monitor": "the member's own metric",
    "mode": "min or max",
    "save_top_k": "Lightning's own top-k bookkeeping per member (-1: every epoch, 0: none)",
    "save_last": "true or false (`link` runs alone)",
    "auto_insert_metric_name": "in the file names",
    "enable_version_counter": "Lightning's own -v1, -v2 names",
    "verbose": "Lightning's own lines",
}
CHECKPOINT_AT_DEFAULT: dict[str, tuple[Any, ...]] = {
    "save_on_exception": (False,),
    "save_weights_only": (False,),
    "every_n_train_steps": (None, 0),
    "train_time_interval": (None,),
    "every_n_epochs": (None, 1),
    "save_on_train_epoch_end": (None, False),
}
EARLY_STOPPING_HONOURED: dict[str, str] = {
    "monitor": "the member's own metric",
    "min_delta": "Lightning's own criteria",
    "patience": "counted in the member's own epochs",
    "verbose": "its reason is logged",
    "mode": "min or max",
    "strict": "a missing metric fails the stack, as it fails the single run",
    "check_finite": "Lightning's own criteria",
    "stopping_threshold": "Lightning's own criteria",
    "divergence_threshold": "Lightning's own criteria",
    "log_rank_zero_only": "one process",
}
EARLY_STOPPING_AT_DEFAULT: dict[str, tuple[Any, ...]] = {"check_on_train_epoch_end": (None, False)}
# mlplab's callbacks: what the stack does with each (all their arguments honoured)
OTHER_CALLBACKS: dict[str, str] = {
    "mlplab.callbacks.divergence.DivergenceCheck": "per member, every check_every_n_steps",
    "mlplab.callbacks.learning_rate.LearningRateLogger": "each member's own lr in its rows",
    "mlplab.callbacks.timing.EpochTimer": "time/epoch_s: the stack's epoch, which every member shared",
    "mlplab.callbacks.loss_curves.LossCurves": "drawn from the member's own epochs when it finishes",
    "mlplab.callbacks.weights.FirstLayerWeights": "the member's weights, drawn at the epochs its single run draws",
    "mlplab.callbacks.progress_bar.ProgressBar": "a stack prints one line per epoch instead",
    "lightning.pytorch.callbacks.RichModelSummary": "printed by the member's own Trainer",
    "lightning.pytorch.callbacks.ModelSummary": "printed by the member's own Trainer",
    "mlplab.callbacks.baselines.Baselines": "at the member's own test",
    "mlplab.callbacks.confusion_matrix.ConfusionMatrix": "at the member's own test",
    "mlplab.callbacks.misclassified.MisclassifiedImages": "at the member's own test",
    "mlplab.callbacks.saliency.SaliencyMaps": "at the member's own test",
    "mlplab.callbacks.pred_vs_true.PredictedVsTrue": "at the member's own test",
    "mlplab.callbacks.residuals.ResidualHistogram": "at the member's own test",
}


def _settings(node: Any) -> dict[str, Any]:
    """A config node's keys with their values resolved where they can be (paths need Hydra's runtime: kept as set)."""
    if not OmegaConf.is_config(node):
        return dict(node or {})
    settings = {}
    for key in node:
        try:
            value = node[key]
            settings[key] = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        except Exception:  # an interpolation only a running job resolves (${hydra:runtime.output_dir})
            settings[key] = OmegaConf.to_container(node, resolve=False)[key]
    return settings


def _at_default(value: Any, allowed: tuple[Any, ...]) -> bool:
    # `True == 1` in Python: a bool is one only of the bools listed
    return any(value == a and isinstance(value, bool) == isinstance(a, bool) for a in allowed)


def _checked(name: str, settings: Mapping[str, Any], honoured: Mapping[str, str], at_default: Mapping) -> str | None:
    for key, value in settings.items():
        if key.startswith("_") or key in honoured:
            continue
        if key not in at_default:
            return f"{name}.{key}={value}: the stacked fit does not implement it"
        if not _at_default(value, at_default[key]):
            return f"{name}.{key}={value}: the stacked fit implements only {at_default[key][0]}"
    return None


def trainer_reason(trainer: Mapping[str, Any]) -> str | None:
    """Why these trainer settings cannot stack (naming the key and value), or None."""
    accelerator = trainer.get("accelerator", "auto")
    if accelerator not in ACCELERATORS:
        return f"trainer.accelerator={accelerator}: stacks run on {', '.join(ACCELERATORS)}"
    clip, algorithm = trainer.get("gradient_clip_val"), trainer.get("gradient_clip_algorithm")
    if clip and algorithm != "value":
        return (
            f"trainer.gradient_clip_val={clip} clips by norm (the default): only gradient_clip_algorithm=value stacks"
        )
    for key, least in (("max_epochs", -1), ("min_epochs", 0)):
        value = trainer.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < least):
            return f"trainer.{key}={value}: the single run decides what it means"
    plugins = trainer.get("plugins") or []
    if any(not isinstance(p, Mapping) or p.get("_target_") != CHECKPOINT_IO for p in plugins):
        return f"trainer.plugins={plugins}: only {CHECKPOINT_IO} stacks"
    return _checked("trainer", trainer, TRAINER_HONOURED, TRAINER_AT_DEFAULT)


def callback_reason(name: str, callback: Mapping[str, Any]) -> str | None:
    """Why the callback `callbacks.<name>` cannot stack, or None."""
    target = callback.get("_target_")
    if target in CHECKPOINT_TARGETS:
        if callback.get("save_last") == "link":
            return f"callbacks.{name}.save_last=link: the stacked fit saves last.ckpt as a file"
        return _checked(f"callbacks.{name}", callback, CHECKPOINT_HONOURED, CHECKPOINT_AT_DEFAULT)
    if target in EARLY_STOPPING_TARGETS:
        return _checked(f"callbacks.{name}", callback, EARLY_STOPPING_HONOURED, EARLY_STOPPING_AT_DEFAULT)
    if target not in OTHER_CALLBACKS:
        return f"callbacks.{name}._target_={target}: a callback the stacked fit does not run"
    return None


def unsupported_setting(cfg: DictConfig) -> str | None:
    """The first trainer or callback setting of the job `cfg` that the stacked fit does not implement, or None."""
    reason = trainer_reason(_settings(cfg.get("trainer")))
    if reason:
        return reason
    seen: set[str] = set()
    for name, node in (cfg.get("callbacks") or {}).items():
        callback = _settings(node) if node is not None else None
        if not callback or "_target_" not in callback:
            continue  # switched off
        kind = "checkpoint" if callback["_target_"] in CHECKPOINT_TARGETS else str(callback["_target_"])
        if kind in seen and kind in ("checkpoint", *EARLY_STOPPING_TARGETS):
            return f"callbacks.{name}: a second {kind} callback does not stack"
        seen.add(kind)
        reason = callback_reason(name, callback)
        if reason:
            return reason
    return None

"""Finding, reading and writing checkpoints, with clear errors for the ones that can't be used."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf
from torch import nn

from mlplab.utils.files import atomic_write

log = logging.getLogger(__name__)

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


def latest_run_checkpoint(runs_root: str | Path, exclude: str | Path | None = None) -> tuple[Path, str]:
    """(the most recently saved `checkpoints/last.ckpt` of the single runs under `runs_root`, a line saying why).

    Sweep jobs are never picked: a sweep resumes by running it again, each job in its own folder.
    """
    candidates = [
        p
        for p in Path(runs_root).glob(f"*/checkpoints/{LAST}")
        if exclude is None or p.parents[1].resolve() != Path(exclude).resolve()
    ]
    if not candidates:
        raise CheckpointError(
            f"ckpt_path=last: no run under {runs_root} has a checkpoints/{LAST} to resume. "
            "Pass a run folder or a checkpoint file: ckpt_path=<outputs/.../runs/<time>>"
        )
    latest = max(candidates, key=lambda p: p.stat().st_mtime)
    saved_at = datetime.fromtimestamp(latest.stat().st_mtime).isoformat(sep=" ", timespec="seconds")
    reason = (
        f"ckpt_path=last picked {latest.parents[1]}: its checkpoints/{LAST} (saved {saved_at}) is the newest of "
        f"{len(candidates)} single run(s) under {runs_root}; sweep jobs are not considered (a sweep resumes "
        "when its command runs again)"
    )
    return latest, reason


def resolve_ckpt_path(ckpt_path: str | Path, runs_root: str | Path, exclude: str | Path | None = None) -> Path:
    """The checkpoint file that `ckpt_path` names.

    `last`: the most recently saved `checkpoints/last.ckpt` among the single runs under `runs_root`
    (`<output_root>/<task_name>/runs`), leaving out the folder `exclude` (the run being started);
    a run folder: its `checkpoints/last.ckpt`; anything else: the file itself.
    """
    if str(ckpt_path) == "last":
        path, reason = latest_run_checkpoint(runs_root, exclude)
        log.info(reason)
        return path
    path = Path(ckpt_path).expanduser()
    if path.is_dir():
        for candidate in (path / "checkpoints" / LAST, path / LAST):
            if candidate.is_file():
                return candidate
        raise CheckpointError(
            f"ckpt_path={str(path)!r} is a folder without checkpoints/{LAST}: pass a run folder or a .ckpt file"
        )
    return path


def run_folder_of(checkpoint_file: str | Path) -> Path:
    """The run folder a checkpoint file belongs to (`<run>/checkpoints/x.ckpt` or `<run>/x.ckpt`)."""
    parent = Path(checkpoint_file).resolve().parent
    return parent.parent if parent.name == "checkpoints" else parent


# What a resume may change: how long it trains, and what doesn't change the run's maths (where outputs go, how it
# is logged, shown and drawn, CPU threads, the baselines fitted after training). Anything else is the run's, and
# so are the callbacks that decide what is kept as best and when training stops.
CHANGEABLE_ON_RESUME = (
    "ckpt_path",
    "trainer.max_epochs",
    "paths",
    "logger",
    "callbacks",
    "trainer.enable_progress_bar",
    "torch_threads",
    "baselines",
)
FIXED_ON_RESUME = ("callbacks.model_checkpoint", "callbacks.early_stopping")


def _under(key: str, prefixes: Sequence[str]) -> bool:
    return any(key == k or key.startswith(k + ".") for k in prefixes)


def changeable_on_resume(key: str) -> bool:
    """Whether the config key `key` (dotted) may differ between a run and its resume."""
    return _under(key, CHANGEABLE_ON_RESUME) and not _under(key, FIXED_ON_RESUME)


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


_ABSENT = _Absent()


def _leaves(node: Any, key: str = "") -> dict[str, Any]:
    if isinstance(node, dict) and node:
        return {
            k: v
            for name, child in node.items()
            for k, v in _leaves(child, f"{key}.{name}" if key else str(name)).items()
        }
    return {key: node}


def run_differences(saved: dict[str, Any], cfg: DictConfig) -> list[str]:
    """`key: <value> in the run, <value> here` for every key, beyond CHANGEABLE_ON_RESUME, where the resolved
    config `cfg` differs from `saved` (a checkpoint's resolved run config). Values derived from the paths
    (checkpoint folder, ...) are compared as if the paths were the run's."""
    current = OmegaConf.to_container(cfg, resolve=False)
    current.pop("hydra", None)
    current["paths"] = saved.get("paths", current.get("paths"))
    for key in ("logger",):  # may change, and resolving it needs Hydra's runtime (run names): not compared
        current.pop(key, None)
    current = OmegaConf.to_container(OmegaConf.create(current), resolve=True)
    here, there = _leaves(current), _leaves({k: v for k, v in saved.items() if k != "hydra"})
    return [
        f"{key}: {there.get(key, _ABSENT)!r} in the run, {here.get(key, _ABSENT)!r} here"
        for key in sorted(set(here) | set(there))
        if not changeable_on_resume(key) and here.get(key, _ABSENT) != there.get(key, _ABSENT)
    ]


def check_same_run(checkpoint: dict[str, Any], cfg: DictConfig, ckpt_path: str | Path) -> None:
    """Raise CheckpointError listing the differences unless `cfg` is the checkpoint's run (up to what may change)."""
    differences = run_differences(checkpoint.get("hyper_parameters", {}), cfg)
    if differences:
        raise CheckpointError(
            f"ckpt_path={str(ckpt_path)!r} was trained with another config; a resume may change only "
            f"{', '.join(CHANGEABLE_ON_RESUME)} (not {', '.join(FIXED_ON_RESUME)}). Different here:\n  "
            + "\n  ".join(differences)
            + f"\nResume the run as it was with: python train.py ckpt_path={run_folder_of(ckpt_path)} "
            "(from a run folder, train.py takes that run's overrides), or start a new run without ckpt_path."
        )


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


def _differences(saved: dict[str, Any], current: dict[str, Any], prefix: str) -> list[str]:
    keys = sorted(set(saved) | set(current))
    return [
        f"{prefix}.{k}={saved.get(k)!r} there, {current.get(k)!r} here" for k in keys if saved.get(k) != current.get(k)
    ]


def check_fits(checkpoint: dict[str, Any], module: nn.Module, cfg: DictConfig, ckpt_path: str | Path) -> None:
    """Raise CheckpointError, naming what differs, unless the checkpoint's weights fit `network`.

    `module` is what the weights will load into; `cfg` the config it was built from.
    """
    saved = checkpoint["state_dict"]
    wanted = {name: tuple(t.shape) for name, t in module.state_dict().items()}
    have = {name: tuple(t.shape) for name, t in saved.items()}
    if wanted == have:
        return
    mismatch = next(
        (f"{n} is {have[n]} there but {wanted[n]} here" for n in wanted if n in have and have[n] != wanted[n]), None
    )
    missing = sorted(set(wanted) ^ set(have))
    detail = mismatch or f"the layers differ ({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''})"
    run_cfg = checkpoint.get("hyper_parameters", {})
    current = OmegaConf.to_container(cfg, resolve=True)
    differences = _differences(run_cfg.get("model", {}), current.get("model", {}), "model")
    saved_data, data = run_cfg.get("data", {}).get("_target_"), current.get("data", {}).get("_target_")
    if saved_data != data:
        differences.append(f"data {saved_data} there, {data} here")
    raise CheckpointError(
        f"ckpt_path={str(ckpt_path)!r} holds a different network: {detail}"
        + (f" ({'; '.join(differences)})" if differences else "")
    )


def checkpoint_to_resume(cfg: DictConfig, module: nn.Module) -> str | None:
    """The checkpoint file that `cfg.ckpt_path` names, checked to fit `module`; None when not resuming."""
    if not cfg.get("ckpt_path"):
        return None
    output_dir = Path(cfg.paths.output_dir).resolve()
    path = resolve_ckpt_path(cfg.ckpt_path, Path(cfg.paths.output_root) / cfg.task_name / "runs", exclude=output_dir)
    from mlplab.sweeps.resume import resuming_own_job  # a sweep job resumes in its own folder: it keeps its number

    if output_dir in path.resolve().parents and not resuming_own_job(cfg, path):
        raise CheckpointError(
            f"ckpt_path={str(path)!r} is inside this run's own folder {output_dir}: resuming there would overwrite its "
            "logs. Resume into a new folder (leave hydra.run.dir unset); the old run's files stay as they are."
        )
    checkpoint = load_checkpoint(path)
    check_fits(checkpoint, module, cfg, path)
    check_same_run(checkpoint, cfg, path)
    return str(path)


def trained_checkpoint(ckpt_path: str | Path, output_root: str | Path = "outputs") -> Path:
    """The checkpoint eval.py and predict.py use: a file as given; for a run folder, its best checkpoint;
    `last`: the best checkpoint of the single run (any task) most recently saved under `output_root`.

    The best is the one the run's own test used: the best path recorded in its `last.ckpt` (after a
    resume that may lie in the earlier run's folder), else its only `best-*.ckpt`; a run that kept no
    best (no monitored metric) gives its `last.ckpt`.
    """
    if str(ckpt_path) == "last":
        saved = list(Path(output_root).glob(f"*/runs/*/checkpoints/{LAST}"))
        if not saved:
            raise CheckpointError(
                f"ckpt_path=last: no run under {output_root}/<task>/runs has a checkpoints/{LAST}: "
                "train one first, or pass a run folder or a .ckpt file"
            )
        ckpt_path = max(saved, key=lambda p: p.stat().st_mtime).parents[1]
    path = Path(ckpt_path).expanduser()
    if not path.is_dir():
        return path
    folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    recorded = _recorded_best(folder / LAST)
    if recorded is not None:
        for candidate in (recorded, folder / recorded.name):  # the run folder may have moved since
            if candidate.is_file():
                return candidate
    bests = sorted(folder.glob("best-*.ckpt"))
    if len(bests) == 1:
        return bests[0]
    if len(bests) > 1:
        raise CheckpointError(
            f"ckpt_path={str(path)!r} holds several best checkpoints ({', '.join(p.name for p in bests)}) "
            f"and no {LAST} that says which is best: pass one, ckpt_path={bests[-1]}"
        )
    if (folder / LAST).is_file():
        return folder / LAST
    raise CheckpointError(
        f"ckpt_path={str(path)!r} is a folder without checkpoints (best-*.ckpt or {LAST}): "
        "pass a run folder or a .ckpt file"
    )


def _recorded_best(last: Path) -> Path | None:
    """The best checkpoint that the ModelCheckpoint state in `last` names, if any."""
    if not last.is_file():
        return None
    callbacks = load_checkpoint(last).get("callbacks", {})
    paths = [state.get("best_model_path") for state in callbacks.values() if isinstance(state, dict)]
    return next((Path(p) for p in paths if p), None)

"""Finding the checkpoint a command names: `last`, a run folder (its last or best checkpoint), or a file."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from mlplab.checkpoints.io import LAST, CheckpointError, load_checkpoint

log = logging.getLogger(__name__)


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

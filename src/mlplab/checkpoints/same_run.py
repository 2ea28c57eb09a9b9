"""Whether a checkpoint may be resumed by this run: the same network, and the same run up to what may change."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch import nn

from mlplab.checkpoints.find import resolve_ckpt_path, run_folder_of
from mlplab.checkpoints.io import CheckpointError, load_checkpoint
from mlplab.utils.hydra_runtime import in_sweep
from mlplab.utils.locks import holds
from mlplab.utils.overrides import hydra_value
from mlplab.utils.shell import command

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
    "tags",
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
            + "\nResume the run as it was with: "
            + command("train.py", "ckpt_path=" + hydra_value(str(run_folder_of(ckpt_path))))
            + " "
            "(from a run folder, train.py takes that run's overrides), or start a new run without ckpt_path."
        )


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
    # a sweep job resumes in its own folder (it keeps its number), holding that folder's job lock
    own_job = in_sweep() and holds(cfg.paths.output_dir)
    if output_dir in path.resolve().parents and not own_job:
        raise CheckpointError(
            f"ckpt_path={str(path)!r} is inside this run's own folder {output_dir}: resuming there would overwrite its "
            "logs. Resume into a new folder (leave hydra.run.dir unset); the old run's files stay as they are."
        )
    checkpoint = load_checkpoint(path)
    check_fits(checkpoint, module, cfg, path)
    check_same_run(checkpoint, cfg, path)
    return str(path)

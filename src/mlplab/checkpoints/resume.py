"""`train.py ckpt_path=<run>` resumes that run as it was: its own overrides, checked before anything is written.

Hydra composes the config and writes `.hydra/` into the new run's folder before train.py's code runs, so
what a resume means is settled on the command line, first: the run's `.hydra/overrides.yaml` is put in
front of the command line's overrides (which win), the result is checked against the checkpoint's run
(only `CHANGEABLE_ON_RESUME` may differ), and a resume into the checkpoint's own folder is refused.
The new run's `.hydra/overrides.yaml` then holds the whole run, so resuming it again works the same way.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from mlplab.checkpoints.find import latest_run_checkpoint, resolve_ckpt_path, run_folder_of
from mlplab.checkpoints.io import CheckpointError, load_checkpoint
from mlplab.checkpoints.same_run import check_same_run
from mlplab.config.compose import compose_run_config
from mlplab.utils.hydra_runtime import in_sweep
from mlplab.utils.overrides import hydra_value
from mlplab.utils.shell import command

MULTIRUN_FLAGS = ("-m", "--multirun")


def _is_override(argument: str) -> bool:
    return not argument.startswith("-") and ("=" in argument or argument.startswith("~"))


def resume_command(run_folder: str | Path) -> str:
    """The shell command that resumes the single run in `run_folder` exactly as it was."""
    return command("train.py", "ckpt_path=" + hydra_value(str(Path(run_folder).resolve())))


def sweep_resume_command(sweep_dir: str | Path) -> str:
    """The shell command that resumes the sweep in `sweep_dir`: its own overrides, its jobs in their folders."""
    return command("train.py", "-m", "sweep_resume=" + hydra_value(str(Path(sweep_dir).resolve())))


def resume_hint(run_folder: str | Path) -> str:
    """The command that resumes the run in `run_folder`; for a sweep job, its sweep's (the job continues in its folder)."""
    if in_sweep():
        return sweep_resume_command(HydraConfig.get().sweep.dir)
    return resume_command(run_folder)


def resume_arguments(argv: Sequence[str]) -> list[str]:
    """`argv` (train.py's arguments) with `ckpt_path=<run folder, checkpoint file or last>` made into that run.

    The run's overrides come first, then the command line's, which replace the run's for the same key;
    `last` becomes the folder it picked (printed, with why). Raises CheckpointError, before anything is
    written, when the result is not the checkpoint's run up to what may change on resume, or would write
    into the checkpoint's own folder. Other command lines (no ckpt_path, sweeps) come back as they are.
    """
    argv = list(argv)
    index = next((i for i, a in enumerate(argv) if a.startswith("ckpt_path=")), None)
    if index is None or any(a in MULTIRUN_FLAGS for a in argv):
        return argv
    overrides = [a for a in argv if _is_override(a)]
    asked = {o.key_or_group: o for o in OverridesParser.create().parse_overrides(overrides)}
    requested = asked["ckpt_path"].value()
    if requested in (None, ""):
        return argv
    with tempfile.TemporaryDirectory() as scratch:
        if str(requested) == "last":
            cfg = compose_run_config(overrides, scratch)
            checkpoint_file, reason = latest_run_checkpoint(Path(cfg.paths.output_root) / cfg.task_name / "runs")
            print(reason, flush=True)
            argv[index] = f"ckpt_path={hydra_value(str(run_folder_of(checkpoint_file)))}"
        else:
            checkpoint_file = resolve_ckpt_path(str(requested), runs_root=".")
        folder = run_folder_of(checkpoint_file)
        _refuse_own_folder(asked, folder, checkpoint_file)

        saved_file = folder / ".hydra" / "overrides.yaml"
        saved = [str(o) for o in OmegaConf.load(saved_file)] if saved_file.is_file() else []
        kept = [
            o
            for o, parsed in zip(saved, OverridesParser.create().parse_overrides(saved))
            if parsed.key_or_group not in asked
        ]
        argv[index:index] = kept
        cfg = compose_run_config([a for a in argv if _is_override(a)], scratch)
    check_same_run(load_checkpoint(checkpoint_file), cfg, checkpoint_file)
    return argv


def _refuse_own_folder(asked: dict, folder: Path, checkpoint_file: Path) -> None:
    run_dir = asked.get("hydra.run.dir")
    if run_dir is None:
        return  # a new folder of its own (mlplab.run.folders.ClaimOutputFolder)
    new_folder = Path(str(run_dir.value())).expanduser().resolve()
    if new_folder == folder or new_folder in Path(checkpoint_file).resolve().parents:
        raise CheckpointError(
            f"ckpt_path={str(checkpoint_file)!r} is inside this run's own folder {new_folder}: resuming there would "
            "overwrite its logs and record. Resume into a new folder (leave hydra.run.dir unset): "
            f"{resume_command(folder)}. Nothing was written."
        )

"""What a run shows on the console: its folder first, one line per epoch, its results, and last where everything
went and the commands that come next. A sweep's jobs show only warnings: Hydra's launch line per job and the sweep
report say the rest (each job's train.log keeps everything)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from omegaconf import DictConfig

from mlplab.config.location import PROJECT_ROOT
from mlplab.utils.overrides import hydra_value
from mlplab.utils.shell import command, interpreter, shell_word

log = logging.getLogger(__name__)

# Example inputs of predict.py per data module (docs/examples), so that the printed predict command runs as printed
EXAMPLE_INPUTS = {
    "MNISTDataModule": "docs/examples/digits",
    "FashionMNISTDataModule": "docs/examples/fashion",
    "HousingDataModule": "docs/examples/housing.csv",
}


class ConsoleFormatter(logging.Formatter):
    """The message alone; a warning or error says so first. Timestamps and logger names go to train.log only."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        return message if record.levelno < logging.WARNING else f"{record.levelname}: {message}"


# What a sweep says about itself (its report, jobs kept or resumed, jobs added): shown, though logged while the last
# job's logging (and this filter) is still in place, since Hydra sets logging up anew only when a job starts
SWEEP_LOGGERS = ("mlplab.sweeps.report", "mlplab.sweeps.resume")


class _WarningsOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name.startswith(SWEEP_LOGGERS)


def quiet_console_in_sweep_jobs(in_sweep: bool) -> None:
    """In a sweep job, the console handlers (not train.log) pass warnings only. Hydra configures logging anew for
    every job, so this runs for each."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) or not isinstance(handler, logging.StreamHandler):
            continue
        for old in [f for f in handler.filters if isinstance(f, _WarningsOnly)]:
            handler.removeFilter(old)
        if in_sweep:
            handler.addFilter(_WarningsOnly())


def shown_path(path: str | Path) -> str:
    """`path` as the user can type it here: relative when under the working folder, else absolute."""
    absolute = Path(os.path.abspath(path))
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


def next_commands(cfg: DictConfig) -> list[str]:
    """The commands that come after a finished run: test it again, predict with it, browse its W&B run."""
    folder = shown_path(cfg.paths.output_dir)
    ckpt = "ckpt_path=" + hydra_value(folder)
    commands = [command("eval.py", ckpt)]
    example = EXAMPLE_INPUTS.get(str((cfg.get("data") or {}).get("_target_", "")).rsplit(".", 1)[-1])
    if example and (PROJECT_ROOT / example).exists():
        commands.append(command("predict.py", ckpt, "inputs=" + hydra_value(shown_path(PROJECT_ROOT / example))))
    wandb = (cfg.get("logger") or {}).get("wandb")
    if wandb and wandb.get("mode") != "disabled" and os.environ.get("WANDB_MODE") != "disabled":
        commands.append(f"{wandb_executable()} leet {shell_word(str(Path(folder) / 'wandb'))}")
    return commands


def wandb_executable() -> str:
    """`wandb` beside the interpreter that ran (`.venv/bin/wandb`), or `wandb` when that is `python` (on the PATH)."""
    python = interpreter()
    return "wandb" if python == "python" else shell_word(str(Path(python).parent / "wandb"))


def log_run_folder(cfg: DictConfig) -> None:
    log.info("Run folder: %s", Path(cfg.paths.output_dir).resolve())


def log_next_commands(cfg: DictConfig) -> None:
    log.info("Next:\n%s", "\n".join(f"  {c}" for c in next_commands(cfg)))

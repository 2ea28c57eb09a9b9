"""Sweeps that resume when run again (placeholder filled below)."""

from __future__ import annotations

import shlex
from pathlib import Path


def sweep_resume_command(sweep_dir: str | Path) -> str:
    """The shell command that resumes the sweep in `sweep_dir`: its own overrides, its jobs in their folders."""
    from mlplab.utils.resume import hydra_value

    return f"python train.py -m {shlex.quote('sweep_resume=' + hydra_value(str(Path(sweep_dir).resolve())))}"

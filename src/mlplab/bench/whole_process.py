"""Whole processes: `python train.py` from command to exit, and a 4-job sweep against the same jobs run separately."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from mlplab.config.location import PROJECT_ROOT

SWEEP = ("optimizer=adam,sgd", "lr=1e-3,1e-2")  # the README's 4-job sweep


def _train_command() -> list[str]:
    script = PROJECT_ROOT / "train.py"
    return [sys.executable, str(script)] if script.is_file() else [sys.executable, "-m", "mlplab.train"]


def _timed_run(args: Sequence[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run([*_train_command(), *args], check=False, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return seconds


def whole_process(
    data_dir: Path,
    device: str,
    val_size: int = 5000,
    logger: str | None = None,
    overrides: Sequence[str] = (),
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Wall time of `python train.py trainer.max_epochs=1`, and of the 4-job sweep against 4 separate runs."""
    common = [
        f"paths.data_dir={data_dir}",
        f"data.val_size={val_size}",
        f"accelerator={'gpu' if torch.device(device).type == 'cuda' else 'cpu'}",
        "trainer.max_epochs=1",
        *([f"logger={logger}"] if logger else []),
        *overrides,
    ]
    with tempfile.TemporaryDirectory(prefix="mlplab-bench-") as tmp:
        progress("[bench] whole process: one run")
        single_s = _timed_run([*common, f"hydra.run.dir={tmp}/single"])
        progress("[bench] whole process: the 4-job sweep")
        sweep_s = _timed_run(["-m", *SWEEP, *common, f"hydra.sweep.dir={tmp}/sweep"])
        separate_s = 0.0
        for i, (optimizer, lr) in enumerate((o, lr) for o in ("adam", "sgd") for lr in ("1e-3", "1e-2")):
            progress(f"[bench] whole process: separate run {i + 1}/4")
            separate_s += _timed_run(
                [f"optimizer={optimizer}", f"lr={lr}", *common, f"hydra.run.dir={tmp}/separate{i}"]
            )
    return {
        "device": device,
        "command": "python train.py trainer.max_epochs=1",
        "sweep": " ".join(["-m", *SWEEP]),
        "single_run_s": single_s,
        "sweep_s": sweep_s,
        "separate_runs_s": separate_s,
        "sweep_over_separate": sweep_s / separate_s,
    }


def whole_process_table(w: dict[str, Any]) -> list[str]:
    """The rows of one device's whole-process table."""
    return [
        "| whole process | wall (s) |",
        "|---|---:|",
        f"| `{w['command']}` ({w['device']}) | {w['single_run_s']:.1f} |",
        f"| `{w['sweep']}`, 1 epoch per job | {w['sweep_s']:.1f} |",
        f"| the same 4 jobs as separate runs | {w['separate_runs_s']:.1f} |",
        f"| sweep / separate runs | {w['sweep_over_separate']:.2f} |",
    ]

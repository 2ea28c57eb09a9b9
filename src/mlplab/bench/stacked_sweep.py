"""A whole sweep with `hydra/launcher=stacked` against the same sweep with Hydra's basic launcher, from command to
exit, in paired rounds (each round runs both, in alternating order, so that a change in the machine's load hits
both alike); the figure is the ratio of each round's two wall times."""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from mlplab.bench.whole_process import _timed_run

LAUNCHERS = {"basic": [], "stacked": ["hydra/launcher=stacked"]}


def stacked_sweep(
    data_dir: Path,
    device: str,
    lrs: Sequence[str] = ("1e-4", "3e-4", "1e-3", "3e-3"),
    seeds: Sequence[int] = (1, 2, 3, 4),
    epochs: int = 2,
    batch_size: int = 64,
    rounds: int = 1,
    val_size: int = 5000,
    logger: str | None = None,
    overrides: Sequence[str] = (),
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Wall times of `train.py -m lr=... seed=...` with each launcher, `rounds` paired rounds, and their ratios."""
    sweep = [f"lr={','.join(lrs)}", f"seed={','.join(map(str, seeds))}"]
    common = [
        f"paths.data_dir={data_dir}",
        f"data.val_size={val_size}",
        f"data.batch_size={batch_size}",
        f"accelerator={'gpu' if torch.device(device).type == 'cuda' else 'cpu'}",
        f"trainer.max_epochs={epochs}",
        *([f"logger={logger}"] if logger else []),
        *overrides,
    ]
    times: dict[str, list[float]] = {name: [] for name in LAUNCHERS}
    with tempfile.TemporaryDirectory(prefix="mlplab-bench-stacked-") as tmp:
        for r in range(rounds):
            order = list(LAUNCHERS) if r % 2 == 0 else list(reversed(LAUNCHERS))
            for name in order:
                progress(f"[bench] stacked sweep, round {r + 1}/{rounds}: {name} launcher")
                folder = f"hydra.sweep.dir={tmp}/{name}{r}"
                times[name].append(_timed_run(["-m", *sweep, *common, *LAUNCHERS[name], folder]))
    ratios = [basic / stacked for basic, stacked in zip(times["basic"], times["stacked"])]
    return {
        "device": device,
        "sweep": " ".join(["-m", *sweep]),
        "jobs": len(lrs) * len(seeds),
        "epochs": epochs,
        "batch_size": batch_size,
        "basic_s": times["basic"],
        "stacked_s": times["stacked"],
        "basic_over_stacked": ratios,
        "median_basic_over_stacked": statistics.median(ratios),
    }


def stacked_sweep_table(s: dict[str, Any]) -> list[str]:
    """The rows of the stacked-sweep table: each round's wall times and ratio."""
    rows = [
        f"| `train.py {s['sweep']}` ({s['jobs']} jobs, {s['epochs']} epochs, batch {s['batch_size']}, {s['device']}) "
        "| basic launcher (s) | stacked (s) | basic / stacked |",
        "|---|---:|---:|---:|",
    ]
    for i, (basic, stacked, ratio) in enumerate(zip(s["basic_s"], s["stacked_s"], s["basic_over_stacked"])):
        rows.append(f"| round {i + 1} | {basic:.1f} | {stacked:.1f} | {ratio:.2f} |")
    rows.append(f"| median of the paired ratios | | | **{s['median_basic_over_stacked']:.2f}** |")
    return rows

"""The validation grid that tuned `experiment=mnist_mlp` (README, "Experiments"), a few epochs and one seed, with
`hydra/launcher=stacked` against the parallel launcher with 2 workers of one thread each (the README's form of the
grid), whole processes, in paired rounds; and whether both launchers gave each job the same test metrics."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mlplab.bench.sweep_results import paired_sweeps

# the third grid of README "Experiments", whose best job is experiment=mnist_mlp (dropout 0.2, shifts of 2 pixels)
GRID = ("experiment=mnist_mlp", "model.dropout=0.2,0.3", "data.max_shift=1,2")
LAUNCHERS = {"parallel": ["hydra/launcher=parallel", "torch_threads=1"], "stacked": ["hydra/launcher=stacked"]}


def tuning_grid(
    data_dir: Path,
    device: str = "cpu",
    grid: Sequence[str] = GRID,
    epochs: int = 2,
    rounds: int = 1,
    val_size: int = 5000,
    overrides: Sequence[str] = (),
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Wall times of the grid with each launcher (`rounds` paired rounds, the order alternating), their ratios, and
    the largest difference between the two launchers' test/acc of one job."""
    common = [
        f"paths.data_dir={data_dir}",
        f"data.val_size={val_size}",
        f"trainer.max_epochs={epochs}",
        f"accelerator={'gpu' if device.startswith('cuda') else 'cpu'}",
        "logger=csv",
        "baselines=false",
        *overrides,
    ]
    runs = paired_sweeps(LAUNCHERS, [*grid, *common], rounds, "tuning grid", progress)
    differences = []
    for parallel, stacked in zip(runs["parallel"], runs["stacked"]):
        pairs = [(parallel["test_by_job"].get(k), v) for k, v in stacked["test_by_job"].items()]
        differences.append(max((abs(a - b) for a, b in pairs if a is not None and b is not None), default=None))
    return {
        "device": device,
        "grid": " ".join(grid),
        "epochs": epochs,
        **runs,
        "parallel_over_stacked": [p["wall_s"] / s["wall_s"] for p, s in zip(runs["parallel"], runs["stacked"])],
        "largest_test_acc_difference": differences,
    }


def tuning_grid_table(g: dict[str, Any]) -> list[str]:
    """Each round's wall times, their ratio, and how far the launchers' test/acc of one job lie apart."""
    rows = [
        f"| `train.py -m {g['grid']}`, {g['epochs']} epochs, {g.get('device', 'cpu')} | parallel, 2 x 1 thread (s) | stacked (s) "
        "| parallel / stacked | largest test/acc difference of a job |",
        "|---|---:|---:|---:|---:|",
    ]
    for r, (p, s, ratio, diff) in enumerate(
        zip(g["parallel"], g["stacked"], g["parallel_over_stacked"], g["largest_test_acc_difference"])
    ):
        rows.append(
            f"| round {r + 1} | {p['wall_s']:.1f} | {s['wall_s']:.1f} | **{ratio:.2f}x** | "
            f"{'' if diff is None else f'{diff:.4f}'} |"
        )
    return rows

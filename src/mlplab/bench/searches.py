"""A search with its pruner against the same search without one (issue 27): the shipped MNIST search, the same
sampler seed, whole processes one after the other; the wall time ratio, the trials' ends, the best val/acc and its
test/acc; and other pruners replayed on the unpruned search's learning curves (mlplab.bench.pruner_replay)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mlplab.bench.pruner_replay import replay_search
from mlplab.bench.sweep_results import paired_sweeps

ARMS = {"pruned": [], "unpruned": ["hydra.sweeper.pruner=null"]}


def search_pruning(
    data_dir: Path,
    device: str = "cpu",
    search: str = "mnist_optuna",
    trials: int = 24,
    rounds: int = 1,
    val_size: int = 5000,
    overrides: Sequence[str] = (),
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Wall times and results of `train.py -m hparams_search=<search>` with its pruner and with `pruner=null`, in
    `rounds` paired rounds (the order alternating), and their ratios."""
    common = [
        f"hparams_search={search}",
        f"hydra.sweeper.n_trials={trials}",
        f"paths.data_dir={data_dir}",
        f"data.val_size={val_size}",
        f"accelerator={'gpu' if device.startswith('cuda') else 'cpu'}",
        "logger=csv",
        "baselines=false",
        *overrides,
    ]
    replayed: dict[str, Any] = {}

    def replay_unpruned(name: str, folder: Path) -> None:
        if name == "unpruned" and not replayed:
            replayed.update(replay_search(folder))

    arms = paired_sweeps(ARMS, common, rounds, "search pruning", progress, inspect=replay_unpruned)
    ratios = [p["wall_s"] / u["wall_s"] for p, u in zip(arms["pruned"], arms["unpruned"])]
    return {
        "device": device,
        "search": search,
        "trials": trials,
        "overrides": list(overrides),
        **arms,
        "pruned_over_unpruned": ratios,
        "replayed": replayed or None,
    }


def search_pruning_table(s: dict[str, Any]) -> list[str]:
    """One row per arm and round, then each round's ratios."""
    extra = f", {' '.join(s['overrides'])}" if s["overrides"] else ""
    rows = [
        f"| `hparams_search={s['search']}`, {s['trials']} trials, {s.get('device', 'cpu')}{extra} | wall time (s) | trials | epochs trained "
        "| best val/acc (job) | its test/acc |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for name in ARMS:
        for r, arm in enumerate(s[name]):
            statuses = ", ".join(f"{count} {status}" for status, count in sorted(arm["statuses"].items()))
            best = f"{arm['best_monitor']:.4f} (#{arm['best_job']})" if arm["best_monitor"] is not None else "none"
            test = f"{arm['best_test']:.4f}" if arm["best_test"] is not None else ""
            rows.append(
                f"| {name}, round {r + 1} | {arm['wall_s']:.1f} | {statuses} | {arm['epochs_trained']} | {best} | {test} |"
            )
    for r, (ratio, p, u) in enumerate(zip(s["pruned_over_unpruned"], s["pruned"], s["unpruned"])):
        epochs = p["epochs_trained"] / u["epochs_trained"] if u["epochs_trained"] else float("nan")
        gap = (
            f"{100 * (p['best_monitor'] - u['best_monitor']):+.2f} points"
            if p["best_monitor"] is not None and u["best_monitor"] is not None
            else ""
        )
        rows.append(f"| pruned / unpruned, round {r + 1} | **{ratio:.2f}x** | | {epochs:.2f}x | {gap} | |")
    return rows

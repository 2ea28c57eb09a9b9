"""Ratios between the paths' epoch times, taken round by round."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from typing import Any


def ratios(summaries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """mlplab / plain (the framework's cost), dataloader / mlplab (the speed-up over the usual path), and
    the time Lightning alone and mlplab add to each step of the plain loop.

    Rounds are paired: a ratio is taken within each round (the paths ran minutes apart at most) and the
    median over rounds is reported with its range, so that a machine that is slower in one round than in
    another moves every path of that round alike. The ratio of the fastest epochs is given too.
    """
    rows = []
    for device, batch_size in dict.fromkeys((s["device"], s["batch_size"]) for s in summaries):
        runs = {s["path"]: s for s in summaries if (s["device"], s["batch_size"]) == (device, batch_size)}
        row: dict[str, Any] = {"device": device, "batch_size": batch_size}
        for slower, faster in (("mlplab", "plain"), ("dataloader", "mlplab"), ("lightning", "plain")):
            if {slower, faster} <= runs.keys():
                per_round = _per_round(runs[slower], runs[faster], lambda a, b: a / b)
                row[f"{slower}_over_{faster}"] = statistics.median(per_round)
                row[f"{slower}_over_{faster}_range"] = [min(per_round), max(per_round)]
                row[f"{slower}_over_{faster}_fastest"] = (
                    runs[slower]["fastest_epoch_s"] / runs[faster]["fastest_epoch_s"]
                )
        if "plain" in runs:
            steps = math.ceil(runs["plain"]["train_samples"] / batch_size)
            for path in ("lightning", "mlplab"):
                if path in runs:
                    per_round = _per_round(runs[path], runs["plain"], lambda a, b, steps=steps: (a - b) / steps * 1e3)
                    row[f"{path}_step_overhead_ms"] = statistics.median(per_round)
        variants = [path for path in runs if path.startswith("mlplab[")]
        if variants and "mlplab" in runs:
            row["variants"] = {}
            for path in variants:
                per_round = _per_round(runs[path], runs["mlplab"], lambda a, b: a / b)
                row["variants"][path] = {
                    "over_mlplab": statistics.median(per_round),
                    "over_mlplab_range": [min(per_round), max(per_round)],
                    "over_mlplab_fastest": runs[path]["fastest_epoch_s"] / runs["mlplab"]["fastest_epoch_s"],
                }
        rows.append(row)
    return rows


def _per_round(a: dict[str, Any], b: dict[str, Any], compare: Callable[[float, float], float]) -> list[float]:
    """`compare` of two paths' median epochs, round by round."""
    return [compare(statistics.median(x), statistics.median(y)) for x, y in zip(a["rounds_s"], b["rounds_s"])]

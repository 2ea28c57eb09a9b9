"""The report as Markdown tables (what BENCHMARKS.md shows)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlplab.bench.pruner_replay import pruner_replay_table
from mlplab.bench.searches import search_pruning_table
from mlplab.bench.stacked_sweep import stacked_sweep_table
from mlplab.bench.tuning_grid import tuning_grid_table
from mlplab.bench.whole_process import whole_process_table

RATIO_COLUMNS = {
    "mlplab_over_plain": "mlplab / plain",
    "mlplab_over_plain_fastest": "fastest epochs",
    "lightning_over_plain": "lightning / plain",
    "dataloader_over_mlplab": "dataloader / mlplab",
    "dataloader_over_mlplab_fastest": "fastest epochs",
    "lightning_step_overhead_ms": "lightning − plain, per step (ms)",
    "mlplab_step_overhead_ms": "mlplab − plain, per step (ms)",
}


def _ratio_cell(row: dict[str, Any], key: str) -> str:
    if key not in row:
        return ""
    if "_over_" not in key:
        return f"{row[key]:.2f}"
    return _ratio_text(row[key], row.get(f"{key}_range"))


def _ratio_text(ratio: float, low_high: Sequence[float] | None = None) -> str:
    """`1.20x`, or `1.20x (1.10–1.30)` with the range over rounds."""
    if not low_high or low_high[0] == low_high[1]:
        return f"{ratio:.2f}x"
    return f"{ratio:.2f}x ({low_high[0]:.2f}–{low_high[1]:.2f})"


def _variant_rows(report: dict[str, Any]) -> list[str]:
    rows = []
    for r in report["ratios"]:
        for path, ratio in r.get("variants", {}).items():
            cells = [
                _ratio_text(ratio["over_mlplab"], ratio["over_mlplab_range"]),
                _ratio_text(ratio["over_mlplab_fastest"]),
            ]
            rows.append(f"| {r['device']} | {r['batch_size']} | {path} | " + " | ".join(cells) + " |")
    return rows


def format_table(report: dict[str, Any]) -> str:
    """The report as Markdown tables (what BENCHMARKS.md shows)."""
    tables = []
    if report["results"]:
        rows = [
            "| device | batch | path | epoch (s) | fastest epoch (s) | samples/s | first step (s) | peak memory (MB) |",
            "|---|---:|---|---:|---:|---:|---:|---:|",
        ]
        for r in report["results"]:
            memory = "" if r["peak_memory_mb"] is None else f"{r['peak_memory_mb']:.0f}"
            rows.append(
                f"| {r['device']} | {r['batch_size']} | {r['path']} | {r['epoch_s']:.2f} | {r['fastest_epoch_s']:.2f} | "
                f"{r['samples_per_s']:,.0f} | {r['first_step_s']:.2f} | {memory} |"
            )
        tables.append(rows)
    if report["ratios"]:
        rows = [
            "| device | batch | " + " | ".join(RATIO_COLUMNS.values()) + " |",
            "|---|---:" + "|---:" * len(RATIO_COLUMNS) + "|",
        ]
        for r in report["ratios"]:
            rows.append(
                f"| {r['device']} | {r['batch_size']} | "
                + " | ".join(_ratio_cell(r, key) for key in RATIO_COLUMNS)
                + " |"
            )
        tables.append(rows)
    if variant_rows := _variant_rows(report):
        tables.append(
            [
                "| device | batch | variant | variant / mlplab | fastest epochs |",
                "|---|---:|---|---:|---:|",
                *variant_rows,
            ]
        )
    tables.extend(whole_process_table(w) for w in report["whole_process"])
    tables.extend(stacked_sweep_table(s) for s in report.get("stacked_sweep", []))
    tables.extend(tuning_grid_table(g) for g in report.get("tuning_grid", []))
    tables.extend(search_pruning_table(s) for s in report.get("search_pruning", []))
    tables.extend(pruner_replay_table(s["replayed"]) for s in report.get("search_pruning", []) if s.get("replayed"))
    return "\n\n".join("\n".join(rows) for rows in tables)

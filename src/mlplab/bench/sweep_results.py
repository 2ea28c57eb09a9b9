"""What a finished sweep left, read back from its report (summary.csv): statuses, epochs trained, the best job."""

from __future__ import annotations

import csv
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlplab.bench.whole_process import _timed_run
from mlplab.sweeps.report.write import CSV_NAME


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def sweep_results(sweep_dir: Path, monitor: str = "val/acc", test_metric: str = "test/acc") -> dict[str, Any]:
    """The sweep's statuses, epochs trained in all, and its best completed job on `monitor` (higher is better):
    its number, best `monitor` and `test_metric`; each job's `test_metric` by its number, to compare sweeps."""
    with open(Path(sweep_dir) / CSV_NAME, newline="") as file:
        rows = list(csv.DictReader(file))
    completed = [row for row in rows if row["status"] == "completed" and _number(row.get(f"best {monitor}"))]
    best = max(completed, key=lambda row: _number(row[f"best {monitor}"]) or 0.0, default=None)
    return {
        "jobs": len(rows),
        "statuses": dict(Counter(row["status"] for row in rows)),
        "epochs_trained": sum(int(_number(row.get("epochs")) or 0) for row in rows),
        "best_job": int(best["job"]) if best else None,
        "best_monitor": _number(best[f"best {monitor}"]) if best else None,
        "best_test": _number(best.get(test_metric)) if best else None,
        "test_by_job": {int(row["job"]): _number(row.get(test_metric)) for row in rows},
    }


def paired_sweeps(
    variants: Mapping[str, Sequence[str]],
    common: Sequence[str],
    rounds: int,
    label: str,
    progress: Callable[[str], None] = print,
    inspect: Callable[[str, Path], None] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Each variant's sweep (`train.py -m <common> <variant>`) timed from command to exit and read back (its
    `wall_s` and sweep_results), in `rounds` paired rounds, the order alternating so that a change in the machine's
    load hits both alike; `inspect(name, folder)` looks at a sweep's folder before it is removed."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory(prefix="mlplab-bench-sweeps-") as tmp:
        for r in range(rounds):
            for name in list(variants) if r % 2 == 0 else list(reversed(variants)):
                progress(f"[bench] {label}, round {r + 1}/{rounds}: {name}")
                folder = Path(tmp) / f"{name}{r}"
                seconds = _timed_run(["-m", *common, *variants[name], f"hydra.sweep.dir={folder}"])
                runs[name].append({"wall_s": seconds, **sweep_results(folder)})
                if inspect is not None:
                    inspect(name, folder)
    return runs

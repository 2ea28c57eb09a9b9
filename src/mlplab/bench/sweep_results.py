"""What a finished sweep left, read back from its report (summary.csv): statuses, epochs trained, the best job."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Any

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

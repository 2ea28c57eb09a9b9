"""Two launchers on one tiny housing sweep: what each job left (status, epochs, checkpoint names, metrics), to compare
a stacked sweep with the basic launcher's (README "Stacked sweeps": test metrics to 1e-3 relative)."""

from __future__ import annotations

import csv
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlplab.run.record import read_run_record
from tests.helpers.runs import job_folders, run_train_process
from tests.helpers.statlib import housing_overrides, make_statlib_file

# the pictures drawn at the test are the single run's own (a member's test is one): off, they only cost time
QUIET = [
    "baselines=false",
    "logger=csv",
    "model.hidden=[16]",
    "torch_threads=1",
    *(
        f"callbacks.{name}=null"
        for name in ("confusion_matrix", "misclassified", "saliency", "pred_vs_true", "residuals")
    ),
    "callbacks.loss_curves=null",
]
RELATIVE = 1e-3  # README "Stacked sweeps": test metrics agree to 1e-3 (relative); the first losses to 1e-5


@dataclass
class Job:
    folder: Path
    record: dict
    checkpoints: list[str]

    @property
    def key(self) -> tuple:
        return tuple(sorted(self.record["overrides"]))

    def first_loss(self) -> float | None:
        return next((float(r["train/loss"]) for r in self.csv_rows() if r.get("train/loss")), None)

    def csv_rows(self) -> list[dict[str, str]]:
        path = self.folder / "csv" / "metrics.csv"
        return list(csv.DictReader(path.open())) if path.is_file() else []

    def files(self) -> list[str]:
        """Every file the job left, relative to its folder."""
        return sorted(str(p.relative_to(self.folder)) for p in self.folder.rglob("*") if p.is_file())


def housing_data(tmp_path: Path) -> list[str]:
    file_md5 = make_statlib_file(tmp_path / "mirror", n=300)
    return [*housing_overrides(tmp_path / "data", tmp_path / "mirror", file_md5), *QUIET]


def sweep(data: list[str], folder: Path, launcher: str, *overrides: str) -> tuple[list[Job], str]:
    """Run `overrides` as a multirun with `launcher`; each job's folder, record and checkpoint names, and the output."""
    result: subprocess.CompletedProcess = run_train_process(
        "-m", *data, *overrides, f"hydra/launcher={launcher}", f"hydra.sweep.dir={folder}"
    )
    jobs = [
        Job(job, read_run_record(job), sorted(p.name for p in (job / "checkpoints").glob("*.ckpt")))
        for job in job_folders(folder)
    ]
    return jobs, result.stdout + result.stderr


def assert_same_jobs(stacked: list[Job], basic: list[Job], output: str) -> None:
    """Each job left what the basic launcher's left: status, epochs, checkpoint names, metrics to the tolerance."""
    assert [j.key for j in stacked] == [j.key for j in basic]
    for many, one in zip(stacked, basic):
        where = f"job {one.folder.name} ({' '.join(one.record['overrides'])})"
        a, b = one.record, many.record
        assert b["status"] == a["status"], (where, b.get("error"), a.get("error"), output[-3000:])
        assert b["epochs"] == a["epochs"], where
        assert many.checkpoints == one.checkpoints, where
        assert many.files() == one.files(), where  # the same files: records, logs, pictures, CSV, .hydra
        columns = [sorted(rows[0]) if rows else [] for rows in (many.csv_rows(), one.csv_rows())]
        assert columns[0] == columns[1], where  # the same CSV columns (model/params, lr, time/..., every metric)
        params = [[r["model/params"] for r in job.csv_rows() if r.get("model/params")] for job in (many, one)]
        assert params[0] == params[1], where  # its own network's parameter count
        if a["status"] != "completed":
            continue
        if one.first_loss() is not None:
            assert many.first_loss() == pytest.approx(one.first_loss(), rel=1e-5), where
        for key, value in a["metrics"].items():
            if key.startswith(("test/", "val/")) and value is not None:
                assert b["metrics"][key] == pytest.approx(value, rel=RELATIVE, abs=1e-6), (where, key)

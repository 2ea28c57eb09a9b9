"""`hydra/launcher=parallel`: jobs run at once in worker processes of their own that share one data cache; a job
whose process is killed is recorded failed, the other jobs finish, the report is written. Real `python train.py -m`
runs on tiny files (one job killing its own worker with SIGKILL)."""

from __future__ import annotations

import csv

import pytest

from mlplab.data.sources import md5sum
from mlplab.run.record import read_run_record
from tests.conftest import tiny_overrides
from tests.helpers.runs import job_folders, run_train_process, short


def test_a_killed_parallel_job_is_recorded_failed_and_the_others_finish_with_a_report(tiny_mnist, tmp_path):
    sweep = tmp_path / "sweep"
    kill = "+callbacks.kill={_target_:tests.helpers.callbacks.KillJob,job:0}"
    quick = [o for o in tiny_overrides(*tiny_mnist) if not o.startswith("callbacks.")]
    result = run_train_process(
        "-m",
        "hydra/launcher=parallel",
        "torch_threads=1",
        *quick,
        "callbacks=none",
        "logger=csv",
        "trainer.max_epochs=1",
        "lr=1e-3,2e-3,3e-3",
        kill,
        f"hydra.sweep.dir={sweep}",
    )

    records = [read_run_record(job) for job in job_folders(sweep)]
    assert [r["status"] for r in records] == ["failed", "completed", "completed"]
    assert "the job's process died" in records[0]["error"] and "SIGKILL" in records[0]["error"]
    assert "lr=0.001" in records[0]["overrides"] and records[0]["objective"] is None
    assert records[0]["pid"] not in {r["pid"] for r in records[1:]}  # the dead worker ran nothing after job 0
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [(row["job"], row["status"]) for row in rows] == [("0", "failed"), ("1", "completed"), ("2", "completed")]
    assert "3 jobs: 2 completed, 1 failed" in (sweep / "summary.md").read_text()
    assert "Job #0 lost" in result.stdout + result.stderr


@pytest.mark.slow
def test_a_joblib_sweep_runs_jobs_in_parallel_processes_that_share_one_data_cache(tiny_mnist, tmp_path):
    data_dir, files = tiny_mnist
    cache = tmp_path / "cache"  # empty: both jobs start by fetching the same files into it
    mirror = f"data.sources=[{{_target_:mlplab.data.sources.Mirror,root:{data_dir},folder:MNIST/raw}}]"
    sweep = tmp_path / "sweep"
    result = run_train_process(
        "-m",
        "hydra/launcher=parallel",
        "torch_threads=1",
        *short(cache, files),
        mirror,
        "lr=1e-3,1e-2",
        f"hydra.sweep.dir={sweep}",
    )
    records = [read_run_record(job) for job in job_folders(sweep)]
    assert [r["status"] for r in records] == ["completed", "completed"]
    assert len({r["pid"] for r in records}) == 2  # two worker processes (in-process jobs would share one pid)
    assert all(r["torch_threads"] == 1 for r in records)
    assert "2 at a time, each slot in a process of its own" in result.stdout + result.stderr
    raw = cache / "MNIST" / "raw"
    assert {name: md5sum(raw / name) for name in files} == files
    assert not list(raw.glob(".fetch-*"))  # no scratch folder left by either job

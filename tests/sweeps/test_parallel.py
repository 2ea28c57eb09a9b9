"""`hydra/launcher=parallel`: a job whose process is killed is recorded failed, the other jobs finish, the report
is written. A real `python train.py -m` on tiny files, with one job killing its own worker with SIGKILL."""

from __future__ import annotations

import csv
import os
import signal

import lightning as L
from hydra.core.hydra_config import HydraConfig

from mlplab.run.record import read_run_record
from tests.conftest import tiny_overrides
from tests.test_scaling import job_folders, run_train


class KillJob(L.Callback):
    """SIGKILLs the process of sweep job `job` at its second training batch: no handler, no clean-up, like the
    out-of-memory killer."""

    def __init__(self, job: int) -> None:
        self.job = job

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if HydraConfig.get().job.num == self.job and batch_idx == 1:
            os.kill(os.getpid(), signal.SIGKILL)


def test_a_killed_parallel_job_is_recorded_failed_and_the_others_finish_with_a_report(tiny_mnist, tmp_path):
    sweep = tmp_path / "sweep"
    kill = "+callbacks.kill={_target_:tests.sweeps.test_parallel.KillJob,job:0}"
    quick = [o for o in tiny_overrides(*tiny_mnist) if not o.startswith("callbacks.")]
    result = run_train(
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

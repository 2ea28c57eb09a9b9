"""Sweeps resume when run again: finished jobs are kept, interrupted ones continue in their folders, nothing is overwritten."""

from __future__ import annotations

import csv
import fcntl
import hashlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import optuna
import pytest
from hydra.core.hydra_config import HydraConfig

from mlplab.config.location import PROJECT_ROOT
from mlplab.run.record import read_run_record
from mlplab.sweeps.resume import SweepMismatchError
from mlplab.train import cli
from mlplab.utils.locks import LOCK_NAME
from mlplab.utils.shell import interpreter
from tests.conftest import tiny_overrides


class ActWhenAsked(L.Callback):
    """In the sweep job whose number is in $ACT_ON_JOB, at the start of its second epoch: `stall` (writes
    <job>/stalled, then sleeps: a job caught mid-sweep, to be killed), `sigterm` (after its first batch) or `fail`."""

    def __init__(self, action: str) -> None:
        self.action = action

    def _chosen(self) -> bool:
        return os.environ.get("ACT_ON_JOB") == str(HydraConfig.get().job.num)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == 1 and self._chosen():
            if self.action == "stall":
                (Path(HydraConfig.get().runtime.output_dir) / "stalled").touch()
                time.sleep(600)
            if self.action == "fail":
                raise RuntimeError("asked to fail")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.action == "sigterm" and (trainer.current_epoch, batch_idx) == (1, 0) and self._chosen():
            os.kill(os.getpid(), signal.SIGTERM)


def sweep_args(tiny_mnist, sweep_dir: Path, *swept: str, action: str = "stall", epochs: int = 2) -> list[str]:
    tiny = [o for o in tiny_overrides(*tiny_mnist) if not o.startswith("trainer.max_epochs=")]
    return [
        "-m",
        *swept,
        *tiny,
        f"trainer.max_epochs={epochs}",
        "model.hidden=[16]",
        "callbacks=lean",
        "baselines=false",
        "logger=none",
        "torch_threads=1",
        f"+callbacks.act={{_target_:tests.sweeps.test_resume.ActWhenAsked,action:{action}}}",
        f"hydra.sweep.dir={sweep_dir}",
    ]


def run_cli(monkeypatch, args: list[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["train.py", *args])
    cli()


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def report_rows(sweep_dir: Path) -> list[dict[str, str]]:
    # wall-clock time differs between any two runs; everything else must not
    return [
        {k: v for k, v in row.items() if k != "wall_time_s"} for row in csv.DictReader(open(sweep_dir / "summary.csv"))
    ]


def test_a_sweep_killed_after_two_jobs_finishes_when_the_same_command_runs_again(tiny_mnist, tmp_path, monkeypatch):
    swept = ("optimizer=adam,sgd", "lr=1e-3,1e-2")
    run_cli(monkeypatch, sweep_args(tiny_mnist, tmp_path / "uninterrupted", *swept))

    sweep = tmp_path / "sweep"
    command = sweep_args(tiny_mnist, sweep, *swept)
    env = {**os.environ, "ACT_ON_JOB": "2", "PYTHONPATH": str(PROJECT_ROOT / "src")}
    process = subprocess.Popen(
        [sys.executable, "train.py", *command],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    while not (sweep / "2" / "stalled").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # job 2 is in its second epoch, with the first one's checkpoints/last.ckpt
    assert process.wait(timeout=30) == -signal.SIGKILL
    assert [(read_run_record(sweep / str(n)) or {}).get("status") for n in range(3)] == [
        "completed",
        "completed",
        "running",
    ]
    assert not (sweep / "3").exists()
    finished = {n: digest(sweep / str(n)) for n in (0, 1)}

    run_cli(monkeypatch, command)  # the same command again
    records = [read_run_record(sweep / str(n)) for n in range(4)]
    assert [r["status"] for r in records] == ["completed"] * 4
    assert {n: digest(sweep / str(n)) for n in (0, 1)} == finished  # not trained again: byte for byte as they were
    assert f"resuming from {sweep / '2' / 'checkpoints' / 'last.ckpt'}" in (sweep / "2" / "train.log").read_text()
    assert records[2]["epochs"] == 2 and records[2]["pid"] == os.getpid() != records[0]["pid"]
    assert report_rows(sweep) == report_rows(tmp_path / "uninterrupted")  # the same jobs, numbers and metrics


def test_a_sweep_job_stopped_by_sigterm_prints_the_command_that_resumes_its_sweep(tiny_mnist, tmp_path, monkeypatch):
    sweep = tmp_path / "sweep"
    monkeypatch.setenv("ACT_ON_JOB", "0")
    with pytest.raises(SystemExit) as stopped:
        run_cli(monkeypatch, sweep_args(tiny_mnist, sweep, "lr=1e-3,1e-2", action="sigterm"))
    assert stopped.value.code == 143
    (hint,) = re.findall(r"Resume with: (.+)", (sweep / "0" / "train.log").read_text())
    assert hint == f"{interpreter()} train.py -m sweep_resume={sweep}"
    assert read_run_record(sweep / "0")["status"] == "interrupted" and not (sweep / "1").exists()

    monkeypatch.delenv("ACT_ON_JOB")
    run_cli(monkeypatch, shlex.split(hint)[2:])  # the printed command, run as train.py runs it
    records = [read_run_record(sweep / str(n)) for n in range(2)]
    assert [(r["status"], r["epochs"]) for r in records] == [("completed", 2), ("completed", 2)]
    assert f"resuming from {sweep / '0' / 'checkpoints' / 'last.ckpt'}" in (sweep / "0" / "train.log").read_text()
    assert len(report_rows(sweep)) == 2 and not list(sweep.glob("[2-9]"))


def test_a_rerun_adds_only_new_values_and_refuses_other_keys_or_settings(tiny_mnist, tmp_path, monkeypatch):
    sweep = tmp_path / "sweep"
    run_cli(monkeypatch, sweep_args(tiny_mnist, sweep, "lr=1e-3,1e-2", epochs=1))
    before = {n: digest(sweep / str(n)) for n in (0, 1)}

    run_cli(monkeypatch, sweep_args(tiny_mnist, sweep, "lr=1e-3,1e-1", epochs=1))  # 1e-3 is there, 1e-1 is new
    assert (
        read_run_record(sweep / "2")["overrides"][0] == "lr=0.1"
        and read_run_record(sweep / "2")["status"] == "completed"
    )
    assert {n: digest(sweep / str(n)) for n in (0, 1)} == before  # 1e-2 is not in this command: left as it is
    assert [row["lr"] for row in report_rows(sweep)] == ["0.001", "0.01", "0.1"]

    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")  # Hydra raises instead of printing and exiting
    everything = digest(sweep)
    with pytest.raises(
        SweepMismatchError, match=r"(?s)other override keys.*\n  optimizer: not set in the sweep, adam,sgd here"
    ):
        run_cli(monkeypatch, sweep_args(tiny_mnist, sweep, "lr=1e-3,1e-2", "optimizer=adam,sgd", epochs=1))
    with pytest.raises(
        SweepMismatchError, match=r"(?s)no job in common.*\n  trainer.max_epochs: 1 in the sweep, 2 here"
    ):
        run_cli(monkeypatch, sweep_args(tiny_mnist, sweep, "lr=1e-3,1e-2", epochs=2))
    assert digest(sweep) == everything


def test_failed_jobs_run_again_only_when_asked_and_a_held_job_is_never_trained_twice(tiny_mnist, tmp_path, monkeypatch):
    sweep = tmp_path / "sweep"
    command = sweep_args(tiny_mnist, sweep, "lr=1e-3,1e-2", action="fail")
    monkeypatch.setenv("ACT_ON_JOB", "1")
    run_cli(monkeypatch, command)
    monkeypatch.delenv("ACT_ON_JOB")
    assert [read_run_record(sweep / str(n))["status"] for n in (0, 1)] == ["completed", "failed"]
    failed = digest(sweep / "1")

    run_cli(monkeypatch, command)
    assert digest(sweep / "1") == failed  # not asked: kept as it is

    with open(sweep / "1" / LOCK_NAME, "a") as held:  # another rerun's job process trains job 1 now
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        run_cli(monkeypatch, [*command, "sweep_rerun=failed"])
        assert digest(sweep / "1") == failed
        # planned before the other process took the job: the job itself sees the lock and does not train (Hydra has
        # written the job's .hydra/ by then, and the job logs why it stopped)
        monkeypatch.setattr("mlplab.sweeps.resume.job_is_held", lambda folder: False)
        run_cli(monkeypatch, [*command, "sweep_rerun=failed"])
        assert {k: v for k, v in digest(sweep / "1").items() if not k.startswith((".hydra/", "train.log"))} == {
            k: v for k, v in failed.items() if not k.startswith((".hydra/", "train.log"))
        }
        assert "is held by another process" in (sweep / "1" / "train.log").read_text()
    monkeypatch.undo()

    run_cli(monkeypatch, [*command, "sweep_rerun=failed"])
    assert [read_run_record(sweep / str(n))["status"] for n in (0, 1)] == ["completed", "completed"]


def test_an_optuna_study_in_sql_storage_continues_toward_its_total_in_the_same_folder(
    tiny_mnist, tmp_path, monkeypatch
):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    sweep = tmp_path / "sweep"
    tiny = [o for o in tiny_overrides(*tiny_mnist) if not o.startswith("trainer.max_epochs=")]

    def search(trials: int) -> None:
        run_cli(
            monkeypatch,
            [
                "-m",
                "hparams_search=mnist_optuna",
                f"hydra.sweeper.n_trials={trials}",
                f"hydra.sweeper.storage={storage}",
                *tiny,
                "trainer.max_epochs=1",
                "callbacks=lean",
                "baselines=false",
                "logger=none",
                f"hydra.sweep.dir={sweep}",
            ],
        )

    search(2)
    first = {n: digest(sweep / str(n)) for n in (0, 1)}
    search(3)  # one more trial, not three: n_trials is the study's total
    study = optuna.load_study(study_name="mnist_mlp", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert {n: digest(sweep / str(n)) for n in (0, 1)} == first  # the new trial got job number 2, its own folder
    assert [read_run_record(sweep / str(n))["objective"] for n in range(3)] == [t.value for t in study.trials]
    search(3)
    assert len(optuna.load_study(study_name="mnist_mlp", storage=storage).trials) == 3 and not (sweep / "3").exists()


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["parallel", "submitit_local"])
def test_parallel_and_submitit_reruns_launch_only_the_jobs_to_run_with_their_numbers(tiny_mnist, tmp_path, launcher):
    from tests.test_scaling import run_train

    sweep = tmp_path / "sweep"
    common = [f"hydra/launcher={launcher}", *sweep_args(tiny_mnist, sweep, epochs=1)[1:]]
    run_train("-m", *common, "lr=1e-3,1e-2")
    before = {n: digest(sweep / str(n)) for n in (0, 1)}
    run_train("-m", *common, "lr=1e-3,1e-2,1e-1")  # one more value: only its job runs, as job 2
    assert {n: digest(sweep / str(n)) for n in (0, 1)} == before
    records = [read_run_record(sweep / str(n)) for n in range(3)]
    assert [(r["status"], r["job"]["num"], r["overrides"][-1]) for r in records] == [
        ("completed", 0, "lr=0.001"),
        ("completed", 1, "lr=0.01"),
        ("completed", 2, "lr=0.1"),
    ]
    assert records[2]["pid"] not in (records[0]["pid"], records[1]["pid"], os.getpid())  # a worker process of its own

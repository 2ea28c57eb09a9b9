"""Sweeps resume when run again: finished jobs are kept, interrupted ones continue in their folders, nothing is overwritten."""

from __future__ import annotations

import csv
import fcntl
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf

from mlplab.config.location import PROJECT_ROOT
from mlplab.run.record import read_run_record
from mlplab.sweeps.resume import SweepMismatchError
from mlplab.utils.locks import LOCK_NAME
from mlplab.utils.shell import interpreter
from tests.conftest import tiny_overrides
from tests.helpers.runs import (
    assert_same_history,
    digest,
    job_folders,
    run_cli_in_process,
    run_train_process,
    start_train_process,
)
from tests.helpers.statlib import housing_overrides, make_statlib_file


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
        f"+callbacks.act={{_target_:tests.helpers.callbacks.ActWhenAsked,action:{action}}}",
        f"hydra.sweep.dir={sweep_dir}",
    ]


def report_rows(sweep_dir: Path) -> list[dict[str, str]]:
    # wall-clock time differs between any two runs; everything else must not
    return [
        {k: v for k, v in row.items() if k != "wall_time_s"} for row in csv.DictReader(open(sweep_dir / "summary.csv"))
    ]


def test_a_sweep_killed_after_two_jobs_finishes_when_the_same_command_runs_again(tiny_mnist, tmp_path, monkeypatch):
    swept = ("optimizer=adam,sgd", "lr=1e-3,1e-2")
    run_cli_in_process(monkeypatch, *sweep_args(tiny_mnist, tmp_path / "uninterrupted", *swept))

    sweep = tmp_path / "sweep"
    command = sweep_args(tiny_mnist, sweep, *swept)
    process = start_train_process(
        *command, env={"ACT_ON_JOB": "2"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
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

    run_cli_in_process(monkeypatch, *command)  # the same command again
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
        run_cli_in_process(monkeypatch, *sweep_args(tiny_mnist, sweep, "lr=1e-3,1e-2", action="sigterm"))
    assert stopped.value.code == 143
    (hint,) = re.findall(r"Resume with: (.+)", (sweep / "0" / "train.log").read_text())
    assert hint == f"{interpreter()} train.py -m sweep_resume={sweep}"
    assert read_run_record(sweep / "0")["status"] == "interrupted" and not (sweep / "1").exists()

    monkeypatch.delenv("ACT_ON_JOB")
    run_cli_in_process(monkeypatch, *shlex.split(hint)[2:])  # the printed command, run as train.py runs it
    records = [read_run_record(sweep / str(n)) for n in range(2)]
    assert [(r["status"], r["epochs"]) for r in records] == [("completed", 2), ("completed", 2)]
    assert f"resuming from {sweep / '0' / 'checkpoints' / 'last.ckpt'}" in (sweep / "0" / "train.log").read_text()
    assert len(report_rows(sweep)) == 2 and not list(sweep.glob("[2-9]"))


def test_a_resumed_sweep_job_keeps_its_whole_metric_history(tmp_path, monkeypatch):
    # issue 29: `-m lr=1e-3,3e-3 seed=1 data=housing`, SIGTERM, `-m sweep_resume=<sweep>`: metrics.csv kept only
    # the resumed epochs
    file_md5 = make_statlib_file(tmp_path / "mirror", n=300)
    quick = [o for o in housing_overrides(tmp_path / "data", tmp_path / "mirror", file_md5) if "max_epochs" not in o]

    def command(sweep: Path) -> list[str]:
        return [
            "-m",
            "lr=1e-3,3e-3",
            "seed=1",
            *quick,
            "trainer.max_epochs=3",
            "model.hidden=[16]",
            "callbacks=lean",
            "baselines=false",
            "logger=csv",
            "torch_threads=1",
            "+callbacks.act={_target_:tests.helpers.callbacks.ActWhenAsked,action:sigterm}",
            f"hydra.sweep.dir={sweep}",
        ]

    run_cli_in_process(monkeypatch, *command(tmp_path / "uninterrupted"))
    sweep = tmp_path / "sweep"
    monkeypatch.setenv("ACT_ON_JOB", "0")
    with pytest.raises(SystemExit) as stopped:
        run_cli_in_process(monkeypatch, *command(sweep))  # job 0 stops after the first batch of its second epoch
    assert stopped.value.code == 143 and not (sweep / "1").exists()
    monkeypatch.delenv("ACT_ON_JOB")

    run_cli_in_process(monkeypatch, "-m", f"sweep_resume={sweep}")
    assert f"resuming from {sweep / '0' / 'checkpoints' / 'last.ckpt'}" in (sweep / "0" / "train.log").read_text()
    for job in ("0", "1"):  # every epoch and step, with the uninterrupted sweep's values
        assert_same_history(sweep / job, tmp_path / "uninterrupted" / job, f"job {job}")


def test_a_rerun_adds_only_new_values_and_refuses_other_keys_or_settings(tiny_mnist, tmp_path, monkeypatch):
    sweep = tmp_path / "sweep"
    run_cli_in_process(monkeypatch, *sweep_args(tiny_mnist, sweep, "lr=1e-3,1e-2", epochs=1))
    before = {n: digest(sweep / str(n)) for n in (0, 1)}

    run_cli_in_process(
        monkeypatch, *sweep_args(tiny_mnist, sweep, "lr=1e-3,1e-1", epochs=1)
    )  # 1e-3 is there, 1e-1 is new
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
        run_cli_in_process(monkeypatch, *sweep_args(tiny_mnist, sweep, "lr=1e-3,1e-2", "optimizer=adam,sgd", epochs=1))
    with pytest.raises(
        SweepMismatchError, match=r"(?s)no job in common.*\n  trainer.max_epochs: 1 in the sweep, 2 here"
    ):
        run_cli_in_process(monkeypatch, *sweep_args(tiny_mnist, sweep, "lr=1e-3,1e-2", epochs=2))
    assert digest(sweep) == everything


def test_failed_jobs_run_again_only_when_asked_and_a_held_job_is_never_trained_twice(tiny_mnist, tmp_path, monkeypatch):
    sweep = tmp_path / "sweep"
    command = sweep_args(tiny_mnist, sweep, "lr=1e-3,1e-2", action="fail")
    monkeypatch.setenv("ACT_ON_JOB", "1")
    run_cli_in_process(monkeypatch, *command)
    monkeypatch.delenv("ACT_ON_JOB")
    assert [read_run_record(sweep / str(n))["status"] for n in (0, 1)] == ["completed", "failed"]
    failed = digest(sweep / "1")

    run_cli_in_process(monkeypatch, *command)
    assert digest(sweep / "1") == failed  # not asked: kept as it is

    with open(sweep / "1" / LOCK_NAME, "a") as held:  # another rerun's job process trains job 1 now
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        run_cli_in_process(monkeypatch, *command, "sweep_rerun=failed")
        assert digest(sweep / "1") == failed
        # planned before the other process took the job: the job itself sees the lock and does not train (Hydra has
        # written the job's .hydra/ by then, and the job logs why it stopped)
        monkeypatch.setattr("mlplab.utils.locks.is_held", lambda folder: False)
        run_cli_in_process(monkeypatch, *command, "sweep_rerun=failed")
        assert {k: v for k, v in digest(sweep / "1").items() if not k.startswith((".hydra/", "train.log"))} == {
            k: v for k, v in failed.items() if not k.startswith((".hydra/", "train.log"))
        }
        assert "is held by another process" in (sweep / "1" / "train.log").read_text()
    monkeypatch.undo()

    run_cli_in_process(monkeypatch, *command, "sweep_rerun=failed")
    assert [read_run_record(sweep / str(n))["status"] for n in (0, 1)] == ["completed", "completed"]


def test_an_optuna_study_in_sql_storage_continues_toward_its_total_in_the_same_folder(
    tiny_mnist, tmp_path, monkeypatch
):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    sweep = tmp_path / "sweep"
    tiny = [o for o in tiny_overrides(*tiny_mnist) if not o.startswith("trainer.max_epochs=")]

    def search(trials: int, folder: Path = sweep) -> None:
        run_cli_in_process(
            monkeypatch,
            "-m",
            "hparams_search=mnist_optuna",
            f"hydra.sweeper.n_trials={trials}",
            f"hydra.sweeper.storage={storage}",
            *tiny,
            "trainer.max_epochs=1",
            "callbacks=lean",
            "baselines=false",
            "logger=none",
            f"hydra.sweep.dir={folder}",
        )

    def objectives(folder: Path) -> list[float]:
        return [read_run_record(job)["objective"] for job in job_folders(folder)]

    search(2)
    first = {n: digest(sweep / str(n)) for n in (0, 1)}
    search(3)  # one more trial, not three: n_trials is the study's total
    study = optuna.load_study(study_name="mnist_mlp", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert {n: digest(sweep / str(n)) for n in (0, 1)} == first  # the new trial got job number 2, its own folder
    assert [read_run_record(sweep / str(n))["objective"] for n in range(3)] == [t.value for t in study.trials]
    assert OmegaConf.load(sweep / "optimization_results.yaml").best_value == max(objectives(sweep))
    search(3)
    assert len(optuna.load_study(study_name="mnist_mlp", storage=storage).trials) == 3 and not (sweep / "3").exists()

    # the same study from a sweep in another folder: its trials count toward the same total, its best is the study's
    other = tmp_path / "other"
    search(4, other)
    study = optuna.load_study(study_name="mnist_mlp", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4  # one trial added to the first three
    assert [t.value for t in study.trials] == objectives(sweep) + objectives(other)
    assert OmegaConf.load(other / "optimization_results.yaml").best_value == max(t.value for t in study.trials)


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["parallel", "submitit_local"])
def test_parallel_and_submitit_reruns_launch_only_the_jobs_to_run_with_their_numbers(tiny_mnist, tmp_path, launcher):
    sweep = tmp_path / "sweep"
    common = [f"hydra/launcher={launcher}", *sweep_args(tiny_mnist, sweep, epochs=1)[1:]]
    run_train_process("-m", *common, "lr=1e-3,1e-2")
    before = {n: digest(sweep / str(n)) for n in (0, 1)}
    run_train_process("-m", *common, "lr=1e-3,1e-2,1e-1")  # one more value: only its job runs, as job 2
    assert {n: digest(sweep / str(n)) for n in (0, 1)} == before
    records = [read_run_record(sweep / str(n)) for n in range(3)]
    assert [(r["status"], r["job"]["num"], r["overrides"][-1]) for r in records] == [
        ("completed", 0, "lr=0.001"),
        ("completed", 1, "lr=0.01"),
        ("completed", 2, "lr=0.1"),
    ]
    assert records[2]["pid"] not in (records[0]["pid"], records[1]["pid"], os.getpid())  # a worker process of its own


def _truncate(path: Path) -> None:
    text = path.read_text()
    path.write_text(text[: len(text) // 2])  # a write cut short


def test_a_truncated_record_or_jobs_file_is_named_reported_and_its_job_runs_again(
    tiny_mnist, tmp_path, monkeypatch, capsys
):
    from mlplab.sweeps.report.write import write_report

    sweep = tmp_path / "sweep"
    command = sweep_args(tiny_mnist, sweep, "lr=1e-3,1e-2,1e-1", epochs=1)
    run_cli_in_process(monkeypatch, *command)
    finished = {n: digest(sweep / str(n)) for n in (0, 2)}
    jobs_file = (sweep / "sweep_jobs.json").read_text()
    _truncate(sweep / "1" / "run_record.json")
    _truncate(sweep / "sweep_jobs.json")
    capsys.readouterr()

    # the report covers the other jobs; the damaged job's row names its file
    rows = write_report(sweep)["rows"]
    assert [(row["job"], row["status"]) for row in rows] == [(0, "completed"), (1, "failed"), (2, "completed")]
    assert f"{sweep / '1' / 'run_record.json'} is unreadable (JSONDecodeError" in rows[1]["error"]
    assert rows[1]["lr"] == "0.01"  # its overrides from Hydra's .hydra/overrides.yaml

    run_cli_in_process(monkeypatch, *command)  # the same command: the damaged job runs again, the others are kept
    printed = "".join(capsys.readouterr())
    assert f"{sweep / 'sweep_jobs.json'} is unreadable (JSONDecodeError" in printed
    assert (sweep / "sweep_jobs.json").read_text() == jobs_file  # the same numbers, rebuilt from the job folders
    assert {n: digest(sweep / str(n)) for n in (0, 2)} == finished and not (sweep / "3").exists()
    record = read_run_record(sweep / "1")
    assert (record["status"], record["overrides"][0], record["pid"]) == ("completed", "lr=0.01", os.getpid())
    assert f"resuming from {sweep / '1' / 'checkpoints' / 'last.ckpt'}" in (sweep / "1" / "train.log").read_text()
    assert [row["status"] for row in report_rows(sweep)] == ["completed"] * 3


@pytest.mark.parametrize("given", ["sweep_rerun=faild", "sweep_rerun=[failed,diverge]"])
def test_a_misspelt_rerun_status_is_refused_before_anything_runs(tiny_mnist, tmp_path, given):
    sweep = tmp_path / "sweep"
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "src")}
    result = subprocess.run(
        [sys.executable, "train.py", *sweep_args(tiny_mnist, sweep, "lr=1e-3,1e-2", epochs=1), given],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    wrong = given.split("=")[1].strip("[]").split(",")[-1]
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"ConfigError: sweep_rerun={given.split('=')[1].strip('[]')} is invalid: '{wrong}' is not a status a rerun "
        "runs again; valid: failed, diverged, pruned (e.g. sweep_rerun=failed or sweep_rerun=[failed,diverged]; "
        "interrupted and killed jobs always resume)"
    )
    assert not sweep.exists()


def test_a_refused_rerun_or_an_unwritable_sweep_folder_says_so_and_leaves_the_report_alone(
    tiny_mnist, tmp_path, monkeypatch
):
    sweep = tmp_path / "sweep"
    run_cli_in_process(monkeypatch, *sweep_args(tiny_mnist, sweep, "lr=1e-3", epochs=1))
    report = {name: digest(sweep)[name] for name in ("summary.csv", "summary.md", "summary.png")}
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "src")}
    env.pop("HYDRA_FULL_ERROR", None)

    def train(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "train.py", *args],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    refused = train(*sweep_args(tiny_mnist, sweep, "lr=1e-3", "optimizer=adam,sgd", epochs=1))
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert (
        refused.stderr.strip()
        .splitlines()[0]
        .startswith(f"SweepMismatchError: this command's jobs are not the sweep in {sweep} (other override keys)")
    )
    assert "writing the report" not in refused.stdout + refused.stderr
    assert {name: digest(sweep)[name] for name in report} == report

    (tmp_path / "a_file").write_text("")
    unwritable = train(*sweep_args(tiny_mnist, tmp_path / "a_file" / "sweep", "lr=1e-3", epochs=1))
    assert unwritable.returncode == 1 and "Traceback" not in unwritable.stderr
    assert unwritable.stderr.strip() == (
        f"ConfigError: hydra.sweep.dir='{tmp_path / 'a_file' / 'sweep'}' is invalid: it cannot be written "
        "(NotADirectoryError: Not a directory). Choose a writable folder: hydra.sweep.dir=<folder> for this sweep, "
        "paths.output_root=<folder> for all."
    )

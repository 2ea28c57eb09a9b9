"""One study, several sweeper processes: together they run n_trials trials, none twice; a killed search goes on
toward n_trials when run again; a search with several objectives reports its Pareto front (real `train.py -m` runs
on tiny files)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import optuna
from omegaconf import OmegaConf
from optuna.trial import TrialState

from mlplab.config.location import PROJECT_ROOT
from mlplab.run.record import read_run_record
from mlplab.utils.optuna_storage import open_storage
from tests.helpers.runs import job_folders
from tests.helpers.searches import run_in_process, search_args

TIMEOUT_S = 300


def start_search(args: list[str], **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "train.py", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "src"), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_two_sweeper_processes_on_one_journal_run_exactly_n_trials_none_twice(tiny_mnist, tmp_path):
    journal = tmp_path / "shared" / "study.journal"
    shared = [f"hydra.sweeper.storage={journal}", "hydra.sweeper.study_name=shared", "hydra.sweeper.n_trials=5"]
    sweeps = [tmp_path / "machine_a", tmp_path / "machine_b"]
    processes = [
        start_search(search_args(tiny_mnist, sweep, *shared, "hydra.sweeper.n_jobs=1", epochs=1)) for sweep in sweeps
    ]
    for process in processes:
        output, _ = process.communicate(timeout=TIMEOUT_S)
        assert process.returncode == 0, output[-4000:]
    study = optuna.load_study(study_name="shared", storage=open_storage(str(journal)))
    assert [t.number for t in study.trials] == [0, 1, 2, 3, 4]
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 5
    jobs = [(sweep, job) for sweep in sweeps for job in job_folders(sweep)]
    assert len(jobs) == 5  # each trial trained once, in the folder of the sweeper that asked it
    by_trial = {(t.user_attrs["sweep_dir"], t.user_attrs["job"]): t for t in study.trials}
    for sweep, job in jobs:
        trial = by_trial[(str(sweep.resolve()), int(job.name))]
        assert read_run_record(job)["objective"] == trial.value
    assert {t.user_attrs["sweeper_pid"] for t in study.trials} == {p.pid for p in processes}  # both took part


def test_a_killed_search_goes_on_toward_n_trials_and_never_reuses_a_job_number(tiny_mnist, tmp_path, monkeypatch):
    sweep = tmp_path / "search"
    stall = "+callbacks.act={_target_:tests.helpers.callbacks.ActWhenAsked,action:stall}"
    args = search_args(tiny_mnist, sweep, "hydra.sweeper.n_trials=3", "hydra.sweeper.n_jobs=1", stall, epochs=2)
    process = start_search(args, ACT_ON_JOB="1")
    deadline = time.monotonic() + TIMEOUT_S
    while not (sweep / "1" / "stalled").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # trial 1 is in its second epoch; the study says it is running
    assert process.wait(timeout=30) == -signal.SIGKILL
    storage = open_storage(str(sweep / "optuna_journal.log"))  # the default storage: a journal in the sweep folder
    assert [t.state for t in optuna.load_study(study_name="mnist_mlp", storage=storage).trials] == [
        TrialState.COMPLETE,
        TrialState.RUNNING,
    ]

    run_in_process(monkeypatch, args)  # the same command again (no job stalls: ACT_ON_JOB is not set here)
    trials = optuna.load_study(study_name="mnist_mlp", storage=open_storage(str(sweep / "optuna_journal.log"))).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert [t.user_attrs["job"] for t in trials] == [0, 1, 2, 3]  # new trials in new folders
    assert [read_run_record(sweep / str(n))["status"] for n in (0, 2, 3)] == ["completed"] * 3
    assert read_run_record(sweep / "1")["status"] == "running"  # killed: the report says failed
    assert "| 1 | failed |" in (sweep / "summary.md").read_text()


def test_a_search_with_two_objectives_reports_its_pareto_front(tiny_mnist, tmp_path, monkeypatch):
    sweep = tmp_path / "search"
    run_in_process(
        monkeypatch,
        search_args(
            tiny_mnist,
            sweep,
            "hydra.sweeper.n_trials=4",
            "hydra.sweeper.n_jobs=2",
            "hydra.sweeper.directions=[maximize,minimize]",
            "optimized_metric=[val/acc,val/loss]",
            "hydra.sweeper.pruner=null",  # Optuna prunes single-objective studies only
            "trainer.limit_train_batches=3",  # undertrained: the trials differ
            epochs=1,
        ),
    )
    records = [read_run_record(job) for job in job_folders(sweep)]
    objectives = [tuple(r["objective"]) for r in records]
    assert all(r["status"] == "completed" and len(r["objective"]) == 2 for r in records)

    def dominated(a, b):  # b is at least as good in both (acc up, loss down) and better in one
        return b[0] >= a[0] and b[1] <= a[1] and b != a

    front = sorted(n for n, a in enumerate(objectives) if not any(dominated(a, b) for b in objectives))
    results = OmegaConf.load(sweep / "optimization_results.yaml")
    assert sorted(t.job for t in results.best_trials) == front
    assert [list(t["values"]) for t in results.best_trials] == [list(objectives[t.job]) for t in results.best_trials]
    section = (sweep / "summary.md").read_text().split("Pareto front (")[1]
    assert section.startswith(f"{len(front)} trial")
    rows = [line.split(" | ") for line in section.splitlines() if line[:3].strip("| ").isdigit()]
    assert sorted(int(row[1]) for row in rows) == front and all("val/acc" in row[2] for row in rows)

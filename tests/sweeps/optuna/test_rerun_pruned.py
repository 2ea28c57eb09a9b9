"""`sweep_rerun=pruned` for a search: a rerun without it runs no pruned trial again; with it, exactly the pruned trials'
jobs run again in their own folders, from their last.ckpt to their end, and the study gets a completed trial for each,
naming the pruned one; the report says so (a real `train.py -m` on tiny files, in this process)."""

from __future__ import annotations

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.trial import TrialState

from mlplab.run.record import read_run_record
from tests.helpers.runs import job_folders
from tests.helpers.searches import run_in_process, search_args

FIXED = ["optimizer=adam", "optimizer.weight_decay=0.0", "model.dropout=0.0", "search.hidden1=64", "search.hidden2=32"]
PRUNER = "{_target_:optuna.pruners.MedianPruner,n_startup_trials:1,n_warmup_steps:0}"


def _study(journal) -> optuna.Study:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    return optuna.load_study(study_name="rerun", storage=storage)


def test_pruned_trials_run_again_to_their_end_only_when_asked(tiny_mnist, tmp_path, monkeypatch):
    sweep, journal = tmp_path / "search", tmp_path / "study.journal"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    study = optuna.create_study(study_name="rerun", storage=storage, direction="maximize")
    for lr in (3e-3, 10.0, 1e-3, 10.0):  # lr=10 (Adam) learns nothing: pruned after its first epoch
        study.enqueue_trial({"lr": lr})
    args = search_args(
        tiny_mnist,
        sweep,
        "hydra.sweeper.params={lr:'choice(0.001,0.003,10.0)'}",
        *FIXED,
        "hydra.sweeper.n_trials=4",
        f"hydra.sweeper.storage={journal}",
        "hydra.sweeper.study_name=rerun",
        f"+hydra.sweeper.pruner={PRUNER}",
    )
    run_in_process(monkeypatch, args)
    jobs = job_folders(sweep)
    assert [read_run_record(job)["status"] for job in jobs] == ["completed", "pruned", "completed", "pruned"]
    before = {job.name: (job / "run_record.json").read_bytes() for job in jobs}

    # the same command again: the search has its 4 trials, and pruned ones are not run again
    run_in_process(monkeypatch, args)
    assert job_folders(sweep) == jobs
    assert {job.name: (job / "run_record.json").read_bytes() for job in jobs} == before
    assert len(_study(journal).trials) == 4

    # asked: exactly the pruned trials' jobs run again, in their own folders, from their last.ckpt to their end
    run_in_process(monkeypatch, [*args, "sweep_rerun=pruned"])
    assert job_folders(sweep) == jobs
    records = [read_run_record(job) for job in jobs]
    assert [(r["status"], r["epochs"]) for r in records] == [("completed", 3)] * 4
    for job in (jobs[0], jobs[2]):
        assert (job / "run_record.json").read_bytes() == before[job.name]
    for job in (jobs[1], jobs[3]):
        assert "was pruned: resuming from" in (job / "train.log").read_text()
    trials = _study(journal).trials
    assert [t.state for t in trials[:4]] == [
        TrialState.COMPLETE,
        TrialState.PRUNED,
        TrialState.COMPLETE,
        TrialState.PRUNED,
    ]
    assert [t.state for t in trials[4:]] == [TrialState.COMPLETE] * 2  # a finished trial cannot change state
    for rerun, pruned, record in zip(trials[4:], (trials[1], trials[3]), (records[1], records[3])):
        assert rerun.user_attrs["rerun_of_trial"] == pruned.number and rerun.params == pruned.params == {"lr": 10.0}
        assert rerun.user_attrs["job"] == pruned.user_attrs["job"] and rerun.value == pytest.approx(record["objective"])
    results = OmegaConf.load(sweep / "optimization_results.yaml")
    assert [(r.trial, r.rerun_of_trial, r.job) for r in results.reruns] == [(4, 1, 1), (5, 3, 3)]
    assert (
        "Pruned trials run again to their end (sweep_rerun=pruned): trial 1 (job 1) as trial 4, trial 3 (job 3) "
        in (sweep / "summary.md").read_text()
    )

    # asked again: nothing left to run, and the reruns did not count toward n_trials (no new trial either)
    done = {job.name: (job / "run_record.json").read_bytes() for job in jobs}
    run_in_process(monkeypatch, [*args, "sweep_rerun=pruned"])
    assert {job.name: (job / "run_record.json").read_bytes() for job in jobs} == done
    assert len(_study(journal).trials) == 6


def test_a_search_refuses_to_rerun_failed_or_diverged_trials_saying_why(tiny_mnist, tmp_path, monkeypatch):
    args = search_args(tiny_mnist, tmp_path / "search", "hydra.sweeper.n_trials=1", "sweep_rerun=failed")
    with pytest.raises(SystemExit) as exit_info:
        run_in_process(monkeypatch, args)
    message = str(exit_info.value)
    assert "sweep_rerun=failed is invalid for an Optuna search" in message and "sweep_rerun=pruned" in message
    assert not (tmp_path / "search" / "0").exists()  # refused before any trial ran

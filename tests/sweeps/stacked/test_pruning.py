"""A search pruned member by member in a stack: each member reports its own monitored metric to its own trial after
each validation; a member its pruner prunes stops as early stopping stops it (status `pruned`, its checkpoints kept,
its best tested), and the other members train on. The same trials with the basic launcher end the same way (a real
`train.py -m` on tiny files, in this process)."""

from __future__ import annotations

import shutil

import optuna
import pytest
import torch
from optuna.trial import TrialState

from mlplab.run.record import read_run_record
from mlplab.sweeps.stacked.members import STACKED_KEY
from tests.helpers.housing_sweeps import RELATIVE
from tests.helpers.runs import job_folders
from tests.helpers.searches import run_in_process, search_args

FIXED = ["optimizer=adam", "optimizer.weight_decay=0.0", "model.dropout=0.0", "search.hidden1=64", "search.hidden2=32"]
PRUNER = "{_target_:optuna.pruners.MedianPruner,n_startup_trials:1,n_warmup_steps:0}"
STUDY = "stackprune"


def _storage(journal):
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))


def _search(tiny_mnist, monkeypatch, sweep, journal, *extra: str) -> None:
    run_in_process(
        monkeypatch,
        search_args(
            tiny_mnist,
            sweep,
            "hydra.sweeper.params={lr:'choice(0.001,0.003,10.0)'}",
            *FIXED,
            f"hydra.sweeper.storage={journal}",
            f"hydra.sweeper.study_name={STUDY}",
            f"+hydra.sweeper.pruner={PRUNER}",
            *extra,
        ),
    )


def _lr(record: dict) -> float:
    return float(dict(o.split("=", 1) for o in record["overrides"])["lr"])


def test_a_stack_prunes_exactly_its_hopeless_members_as_the_basic_launcher_prunes_those_trials(
    tiny_mnist, tmp_path, monkeypatch
):
    # A median pruner compares with finished trials only: one good trial (lr=3e-3) finishes first, in a search of its
    # own on the same study; the journal is copied, so that each launcher goes on from the same study.
    journal = tmp_path / "study.journal"
    study = optuna.create_study(study_name=STUDY, storage=_storage(journal), direction="maximize")
    for lr in (3e-3, 10.0, 1e-3, 10.0):  # lr=10 (Adam) learns nothing
        study.enqueue_trial({"lr": lr})
    _search(tiny_mnist, monkeypatch, tmp_path / "first", journal, "hydra.sweeper.n_trials=1")
    copy = tmp_path / "study_basic.journal"
    shutil.copy(journal, copy)

    # then three trials as one batch: one stack of 3 members, and the same batch with the basic launcher
    batch = ["hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=3"]
    _search(tiny_mnist, monkeypatch, tmp_path / "stacked", journal, *batch, "hydra/launcher=stacked")
    _search(tiny_mnist, monkeypatch, tmp_path / "basic", copy, *batch)

    stacked, basic = job_folders(tmp_path / "stacked"), job_folders(tmp_path / "basic")
    records = [read_run_record(job) for job in stacked]
    assert [_lr(r) for r in records] == [10.0, 1e-3, 10.0]
    for job in stacked:  # trained as one stack
        assert torch.load(job / "checkpoints" / "last.ckpt", weights_only=False)[STACKED_KEY]["job"] == int(job.name)
    # the hopeless members are pruned after their first epoch; the other trains to its end
    assert [(r["status"], r.get("pruned_at_epoch"), r["epochs"]) for r in records] == [
        ("pruned", 0, 1),
        ("completed", None, 3),
        ("pruned", 0, 1),
    ]
    for job, record in zip(stacked, records):  # a pruned member keeps its checkpoints, and its best is tested
        assert (job / "checkpoints" / "last.ckpt").is_file() and "test/acc" in record["metrics"]
        assert len(list((job / "checkpoints").glob("best-*.ckpt"))) == 1
    trials = optuna.load_study(study_name=STUDY, storage=_storage(journal)).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.COMPLETE, TrialState.PRUNED]
    assert [len(t.intermediate_values) for t in trials] == [3, 1, 3, 1]
    assert trials[2].intermediate_values[2] == pytest.approx(records[1]["metrics"]["val/acc"])  # its own metric
    summary = (tmp_path / "stacked" / "summary.md").read_text()
    assert "2 pruned" in summary and "Best job: #1" in summary

    # what the basic launcher leaves for the same trials
    assert [read_run_record(job)["overrides"] for job in basic] == [r["overrides"] for r in records]
    for many, one in zip(stacked, basic):
        a, b = read_run_record(one), read_run_record(many)
        assert (b["status"], b.get("pruned_at_epoch"), b["epochs"]) == (
            a["status"],
            a.get("pruned_at_epoch"),
            a["epochs"],
        )
        assert sorted(p.name for p in (many / "checkpoints").iterdir()) == sorted(
            p.name for p in (one / "checkpoints").iterdir()
        )
        for key in ("test/acc", "test/loss", "val/acc"):
            assert b["metrics"][key] == pytest.approx(a["metrics"][key], rel=RELATIVE, abs=1e-6), (many.name, key)
    basic_trials = optuna.load_study(study_name=STUDY, storage=_storage(copy)).trials
    assert [t.state for t in basic_trials] == [t.state for t in trials]

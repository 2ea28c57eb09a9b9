"""A search prunes its hopeless trials: each job reports its monitored validation metric after every validation and
stops, keeping its checkpoints, when the pruner says so (a real `train.py -m` on tiny files)."""

from __future__ import annotations

import optuna
from omegaconf import OmegaConf
from optuna.trial import TrialState

from mlplab.run.record import read_run_record
from mlplab.sweeps.report.write import CSV_NAME
from tests.helpers.runs import job_folders
from tests.helpers.searches import run_in_process, search_args

FIXED = ["optimizer=adam", "optimizer.weight_decay=0.0", "model.dropout=0.0", "search.hidden1=64", "search.hidden2=32"]
PRUNER = "{_target_:optuna.pruners.MedianPruner,n_startup_trials:1,n_warmup_steps:0}"


def test_hopeless_trials_are_pruned_at_their_first_epoch_and_keep_their_checkpoints(tiny_mnist, tmp_path, monkeypatch):
    sweep, journal = tmp_path / "search", tmp_path / "study.journal"
    # the order of the trials is set by enqueueing them, as a user may: a good lr first, so that the pruner has a
    # finished trial to compare with; lr=10 (Adam) learns nothing
    study = optuna.create_study(
        study_name="prune",
        storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal))),
        direction="maximize",
    )
    for lr in (3e-3, 10.0, 1e-3, 10.0):
        study.enqueue_trial({"lr": lr})
    run_in_process(
        monkeypatch,
        search_args(
            tiny_mnist,
            sweep,
            "hydra.sweeper.params={lr:'choice(0.001,0.003,10.0)'}",
            *FIXED,
            "hydra.sweeper.n_trials=4",
            f"hydra.sweeper.storage={journal}",
            "hydra.sweeper.study_name=prune",
            f"+hydra.sweeper.pruner={PRUNER}",
        ),
    )
    records = [read_run_record(job) for job in job_folders(sweep)]
    lrs = [float(dict(o.split("=", 1) for o in r["overrides"])["lr"]) for r in records]
    assert lrs == [3e-3, 10.0, 1e-3, 10.0]
    hopeless = [r for r, lr in zip(records, lrs) if lr == 10.0]
    assert [(r["status"], r["pruned_at_epoch"], r["epochs"]) for r in hopeless] == [("pruned", 0, 1)] * 2
    assert records[0]["status"] == "completed" and records[0]["epochs"] == 3
    for job, record in zip(job_folders(sweep), records):
        if record["status"] == "pruned":
            assert (job / "checkpoints" / "last.ckpt").is_file() and "test/acc" in record["metrics"]  # best one tested
    trials = optuna.load_study(
        study_name="prune",
        storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal))),
    ).trials
    assert [t.state for t, lr in zip(trials, lrs) if lr == 10.0] == [TrialState.PRUNED] * 2
    assert all(len(t.intermediate_values) == (1 if t.state == TrialState.PRUNED else 3) for t in trials)
    assert trials[0].intermediate_values[2] == records[0]["metrics"]["val/acc"]  # the monitored metric, per epoch
    # the report: pruned is a status of its own, never the best
    summary = (sweep / "summary.md").read_text()
    assert "2 pruned" in summary and ("Best job: #0" in summary or "Best job: #2" in summary)
    assert OmegaConf.load(sweep / "optimization_results.yaml").best_trial.params.lr != 10.0
    assert (sweep / CSV_NAME).read_text().count(",pruned,") == 2
    for view in ("history", "importances", "parallel_coordinates", "intermediate_values"):  # Optuna's views, drawn
        assert (sweep / f"optuna_{view}.png").stat().st_size > 10_000 and f"optuna_{view}.png" in summary


def test_a_rerun_keeps_pruned_jobs_unless_asked_to_run_them_again(tmp_path):
    from mlplab.sweeps.resume import plan_sweep
    from mlplab.utils.files import write_json

    jobs = [["lr=0.001"], ["lr=10"]]
    for num, (overrides, status) in enumerate(zip(jobs, ("completed", "pruned"))):
        write_json(tmp_path / str(num) / "run_record.json", {"status": status, "overrides": overrides})

    def folder(num, overrides):
        return tmp_path / str(num)

    assert [(job.action, job.why) for job in plan_sweep(tmp_path, jobs, folder)] == [
        ("keep", "completed"),
        ("keep", "pruned (run it again with sweep_rerun=pruned)"),
    ]
    assert [job.action for job in plan_sweep(tmp_path, jobs, folder, rerun=["pruned"])] == ["keep", "run"]

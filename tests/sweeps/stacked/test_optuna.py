"""The Optuna sweeper with `hydra/launcher=stacked`: a batch of trials that differ in lr trains as one stack, and
each trial gets its own objective back (a real `python train.py -m` on tiny files)."""

from __future__ import annotations

import pytest
import yaml

from mlplab.run.record import read_run_record
from tests.conftest import tiny_overrides
from tests.helpers.runs import job_folders, run_train_process


@pytest.mark.slow
def test_an_optuna_search_stacks_each_batch_of_trials_and_gets_each_trials_objective(tiny_mnist, tmp_path):
    sweep = tmp_path / "search"
    quick = [o for o in tiny_overrides(*tiny_mnist) if not o.startswith("callbacks.")]
    result = run_train_process(
        "-m",
        "hparams_search=mnist_optuna_lr",
        "hydra/launcher=stacked",
        *quick,
        "trainer.max_epochs=1",
        "model.hidden=[16]",
        "callbacks=lean",
        "baselines=false",
        "logger=csv",
        "torch_threads=1",
        "optimizer=sgd",
        "hydra.sweeper.n_trials=6",
        "hydra.sweeper.n_jobs=3",
        f"hydra.sweep.dir={sweep}",
    )
    output = result.stdout + result.stderr
    assert "stack of 3 jobs (#0, #1, #2) differing in lr" in output
    assert "stack of 3 jobs (#3, #4, #5) differing in lr" in output
    records = [read_run_record(job) for job in job_folders(sweep)]
    assert [r["status"] for r in records] == ["completed"] * 6
    objectives = [r["objective"] for r in records]
    assert len({r["metrics"]["val/loss"] for r in records}) == 6  # six trials, six lrs, six results
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["best_value"] == pytest.approx(max(objectives))
    # Optuna's best trial is one of those whose objective is the best (several may tie on tiny data)
    best_lrs = [float(r["overrides"][0].split("=")[1]) for r in records if r["objective"] == max(objectives)]
    assert records[0]["overrides"][0].startswith("lr=")
    assert any(results["best_params"]["lr"] == pytest.approx(lr) for lr in best_lrs)

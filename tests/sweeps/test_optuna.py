"""The Optuna sweeper (`hparams_search=mnist_optuna`) on tiny files: trials search the configured space, a failing
trial is recorded and gets the worst value, the best value is reported. (A study in SQL storage resumed by a rerun:
tests/sweeps/test_resume.py.)"""

from __future__ import annotations

import torch
from omegaconf import OmegaConf

from mlplab.run.record import read_run_record
from tests.helpers.runs import job_folders, run_main_in_process, short


def test_an_optuna_search_of_three_trials_survives_a_failing_trial(tiny_mnist, tmp_path, monkeypatch):
    sweep = tmp_path / "sweep"
    failing = "+callbacks.fail={_target_:tests.helpers.callbacks.FailingJob,job:1}"
    run_main_in_process(
        monkeypatch,
        "-m",
        "hparams_search=mnist_optuna",
        "hydra.sweeper.n_trials=3",
        *short(*tiny_mnist),
        failing,
        f"hydra.sweep.dir={sweep}",
    )

    records = [read_run_record(job) for job in job_folders(sweep)]
    assert [r["status"] for r in records] == ["completed", "diverged", "completed"]
    assert (
        records[1]["objective"] is None
    )  # the record is standard JSON; Optuna got -inf, the worst value (it refuses NaN)
    results = OmegaConf.load(sweep / "optimization_results.yaml")
    assert results.best_value == max(r["objective"] for r in records if r["objective"] is not None)
    for job, record in zip(job_folders(sweep), records):
        params = dict(o.split("=", 1) for o in record["overrides"] if "=" in o)
        assert 1e-4 <= float(params["lr"]) <= 1e-1 and params["optimizer"] in {"adam", "adamw", "sgd"}
        assert 0.0 <= float(params["model.dropout"]) <= 0.5 and 1e-6 <= float(params["optimizer.weight_decay"]) <= 1e-2
        if record["status"] == "completed":
            hidden = torch.load(job / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]["model"][
                "hidden"
            ]
            assert hidden == [int(params["search.hidden1"]), int(params["search.hidden2"])]
    assert {r["metrics"].get("val/acc") == r["objective"] for r in records if r["status"] == "completed"} == {True}

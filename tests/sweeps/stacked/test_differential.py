"""Differential: sampled sweeps run with `hydra/launcher=stacked` and with the basic launcher leave the same jobs
(statuses, epochs, checkpoint file names, metrics to README's tolerance); a job the stack cannot honour runs alone,
and the log says so. The fast test covers the settings a tester found ignored (issue 26: max_epochs -1 and null,
min_epochs, save_top_k); the slow one samples many configs with a fixed seed."""

from __future__ import annotations

import math
import random

import pytest

from tests.helpers.housing_sweeps import assert_same_jobs, housing_data, sweep

# early stopping that stops a tiny housing run within a few epochs (needed with max_epochs -1 or null)
STOPPING = [
    "callbacks.early_stopping._target_=lightning.pytorch.callbacks.EarlyStopping",
    "callbacks.early_stopping.monitor=val/rmse",
    "callbacks.early_stopping.patience=1",
    "callbacks.early_stopping.min_delta=0.02",
]


def _compare(tmp_path, *overrides: str) -> str:
    data = housing_data(tmp_path)
    stacked, output = sweep(data, tmp_path / "stacked", "stacked", *overrides)
    basic, _ = sweep(data, tmp_path / "basic", "basic", *overrides)
    assert_same_jobs(stacked, basic, output)
    return output


def test_epoch_limits_min_epochs_and_top_k_are_honoured_as_by_the_basic_launcher(tmp_path):
    # 4 jobs, one stack: 2 lrs x max_epochs -1 (until early stopping) and null (Lightning's 1000, early stopping
    # first), each member its own; save_top_k -1 (a checkpoint every epoch); min_epochs 4 keeps a member that would
    # stop training
    output = _compare(
        tmp_path,
        *[f"+{o}" for o in STOPPING],
        "+trainer.min_epochs=4",
        "optimizer=sgd",
        "trainer.max_epochs=-1,null",
        "callbacks.model_checkpoint.save_top_k=-1",
        "lr=0.01,0.05",
    )
    assert output.count("stack of 4 jobs") == 1 and "runs alone" not in output


SAMPLED = {
    "optimizer": ["optimizer=adam", "optimizer=sgd", "optimizer=sgd optimizer.momentum=0.9", "optimizer=adamw"],
    "scheduler": [
        "scheduler=none",
        "scheduler=step scheduler.scheduler.step_size=1",
        "scheduler=cosine",
        "scheduler=onecycle",
        "scheduler=plateau",
        "scheduler=none,cosine",  # per member, as the two keys below
        "scheduler=step,onecycle",
        "scheduler=plateau,cosine",
    ],
    "epochs": [
        "trainer.max_epochs=2",
        "trainer.max_epochs=3",
        "trainer.max_epochs=-1",
        "trainer.max_epochs=null",
        "trainer.max_epochs=2,3",
        "trainer.max_epochs=1,-1",
    ],
    "min_epochs": ["", "+trainer.min_epochs=3"],
    "stopping": ["", "early"],
    "clip": ["", "trainer.gradient_clip_val=0.5 trainer.gradient_clip_algorithm=value", "trainer.gradient_clip_val=1"],
    "top_k": ["", "callbacks.model_checkpoint.save_top_k=-1", "callbacks.model_checkpoint.save_top_k=0"],
    "dropout": ["", "model.dropout=0.2"],
    "lrs": ["lr=0.001,0.01", "lr=0.01,0.1", "lr=0.003,1e4"],  # 1e4 diverges
}


def sampled_configs(n: int, seed: int = 26) -> list[list[str]]:
    rng = random.Random(seed)
    configs = []
    while len(configs) < n:
        choice = {key: rng.choice(values) for key, values in SAMPLED.items()}
        if choice["epochs"].endswith(("-1", "null")):
            choice["stopping"] = "early"  # no limit without early stopping would train forever (both launchers)
            # a schedule over the run's length: cosine's T_max=null is refused, one-cycle's -1 runs alone (and fails)
            while "cosine" in choice["scheduler"] or "onecycle" in choice["scheduler"]:
                choice["scheduler"] = rng.choice(SAMPLED["scheduler"])
        overrides = " ".join(v for k, v in choice.items() if k != "stopping" and v).split()
        if choice["stopping"]:
            overrides += [f"+{o}" for o in STOPPING]
        configs.append(overrides)
    return configs


@pytest.mark.slow
@pytest.mark.parametrize("overrides", sampled_configs(12), ids=lambda o: " ".join(o)[:60])
def test_a_sampled_config_leaves_what_the_basic_launcher_leaves_or_runs_alone(tmp_path, overrides):
    output = _compare(tmp_path, *overrides)
    alone = "trainer.gradient_clip_val=1" in overrides
    assert ("runs alone: trainer.gradient_clip_val=1" in output) == alone
    jobs = math.prod(len(o.split("=", 1)[1].split(",")) for o in overrides)  # every swept key in one stack
    assert (f"stack of {jobs} jobs" in output) != alone

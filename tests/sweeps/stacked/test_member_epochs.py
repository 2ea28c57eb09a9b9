"""Per-member `trainer.max_epochs` and `scheduler` (issue 26, part 3): a grid of 2 values x 2 seeds over either is one
stack under `hydra/launcher=stacked`, and each member is its single run: it trains its own epochs (then ends, while the
others go on) on its own schedule, and leaves the basic launcher's statuses, epochs, checkpoint files, epoch rows,
learning rates, weights pictures, first losses (to 1e-5) and test metrics (to 1e-3), checkpoints that load as the
single run's."""

from __future__ import annotations

import csv

import pytest
import torch

from mlplab.sweeps.stacked.grouping import differing_keys, group_jobs, unstackable_reason
from tests.helpers.housing_sweeps import Job, assert_same_jobs, housing_data, sweep

SEEDS = "seed=1,2"
# the weights picture every 3 epochs and after the last: a 2-epoch member draws its epoch 1 only because it ends there
PICTURES = "callbacks.weights.every_n_epochs=3"
CASES = {
    # one-cycle's length is the member's own epochs (Lightning's estimated_stepping_batches)
    "epochs-onecycle": ["scheduler=onecycle", "trainer.max_epochs=2,4", PICTURES],
    "epochs-constant": ["trainer.max_epochs=1,3", PICTURES],
    "epochs-cosine": ["scheduler=cosine", "trainer.max_epochs=2,4"],  # T_max: ${trainer.max_epochs}, each its own
    # a plateau that reduces the lr after every epoch whose val/rmse is not half the best: each member on its own
    "epochs-plateau": [
        "scheduler=plateau",
        "scheduler.scheduler.patience=0",
        "+scheduler.scheduler.threshold=0.5",
        "trainer.max_epochs=3,5",
    ],
    "epochs-early_stopping": [
        "optimizer=sgd",
        "lr=0.01",
        "+callbacks.early_stopping._target_=lightning.pytorch.callbacks.EarlyStopping",
        "+callbacks.early_stopping.monitor=val/rmse",
        "+callbacks.early_stopping.patience=1",
        "+callbacks.early_stopping.min_delta=0.02",
        "trainer.max_epochs=2,-1",
    ],
    "none-cosine": ["scheduler=none,cosine", "trainer.max_epochs=3"],
    "step-onecycle": ["scheduler=step,onecycle", "trainer.max_epochs=3"],  # epoch and step intervals
    "plateau-step": ["scheduler=plateau,step", "lr=0.03", "trainer.max_epochs=4"],  # plateau: its own val/rmse
    "onecycle-warmups": ["scheduler=onecycle", "scheduler.scheduler.pct_start=0.1,0.6", "trainer.max_epochs=2"],
    "step-frequencies": [
        "scheduler=step",
        "scheduler.interval=step",
        "scheduler.scheduler.step_size=3",
        "+scheduler.frequency=1,2",
        "trainer.max_epochs=2",
    ],
}
FAST = "epochs-onecycle"  # the representative case every `make test` runs


def test_jobs_differing_in_epochs_and_schedulers_share_one_stack(compose_config):
    schedulers = ("none", "cosine", "step", "onecycle", "plateau")
    # cosine's T_max and plateau's monitor are interpolations: they make no two jobs differ beyond the two keys
    cfgs = [
        compose_config(f"scheduler={name}", f"trainer.max_epochs={epochs}") for name in schedulers for epochs in (2, 5)
    ]
    stacks = group_jobs(cfgs, max_members=16)
    assert [stack.jobs for stack in stacks] == [list(range(len(cfgs)))] and stacks[0].alone is None
    assert {"trainer.max_epochs", "scheduler"} <= set(differing_keys(cfgs))
    scheduler_settings = ["scheduler=step", "scheduler.scheduler.step_size=1", "+scheduler.frequency=2"]
    assert len(group_jobs([cfgs[0], compose_config(*scheduler_settings)], max_members=16)) == 1


def test_a_schedule_over_the_run_without_an_epoch_limit_runs_alone(compose_config):
    # its single run fails as it starts (an infinite step estimate); in a stack it would fail the other members
    reason = unstackable_reason(compose_config("scheduler=onecycle", "trainer.max_epochs=-1"))
    assert reason is not None and "trainer.max_epochs=-1" in reason and "total_steps=null" in reason
    assert unstackable_reason(compose_config("scheduler=onecycle", "trainer.max_epochs=null")) is None  # 1000 epochs
    assert unstackable_reason(compose_config("scheduler=step", "trainer.max_epochs=-1")) is None


def _rows(job: Job) -> list[dict[str, str]]:
    return list(csv.DictReader((job.folder / "csv" / "metrics.csv").open()))


def _learning_rates(job: Job) -> list[float]:
    return [float(row["lr"]) for row in _rows(job) if row.get("lr")]


def _epoch_rows(job: Job) -> list[int]:
    return [int(row["epoch"]) for row in _rows(job) if row.get("val/rmse")]


def _pictures(job: Job) -> list[str]:
    return sorted(p.name for p in (job.folder / "images" / "weights").glob("*.png"))


def _state_shapes(job: Job, name: str) -> dict[str, tuple[int, ...]]:
    checkpoint = torch.load(job.folder / "checkpoints" / name, weights_only=True)
    return {key: tuple(value.shape) for key, value in checkpoint["state_dict"].items()}


def _assert_same_schedule_state(many: Job, one: Job, name: str) -> None:
    """The checkpoint's scheduler states and lr as its single run's (what a resume from it continues with); values
    derived from metrics (a plateau's best) to the stack's float tolerance."""
    a, b = (torch.load(job.folder / "checkpoints" / name, weights_only=True) for job in (one, many))
    assert len(b["lr_schedulers"]) == len(a["lr_schedulers"]), name
    for state_b, state_a in zip(b["lr_schedulers"], a["lr_schedulers"]):
        assert state_b.keys() == state_a.keys(), name
        for key, value in state_a.items():
            if isinstance(value, float) or (isinstance(value, list) and value and isinstance(value[0], float)):
                assert state_b[key] == pytest.approx(value, rel=1e-4), (name, key)
            else:
                assert state_b[key] == value, (name, key)
    lrs = [[group["lr"] for group in c["optimizer_states"][0]["param_groups"]] for c in (b, a)]
    assert lrs[0] == pytest.approx(lrs[1], rel=1e-6), name


def _saved_epoch(job: Job, name: str) -> int:
    return int(torch.load(job.folder / "checkpoints" / name, weights_only=True)["epoch"])


@pytest.mark.parametrize(
    "case", [pytest.param(name, marks=[] if name == FAST else [pytest.mark.slow]) for name in CASES]
)
def test_a_grid_over_epochs_or_schedulers_is_one_stack_of_single_runs(tmp_path, case):
    data = housing_data(tmp_path)
    overrides = [*CASES[case], SEEDS]
    stacked, output = sweep(data, tmp_path / "stacked", "stacked", *overrides)
    basic, _ = sweep(data, tmp_path / "basic", "basic", *overrides)

    assert "stack of 4 jobs" in output, output[-3000:]  # one stack: epochs and schedulers vary inside it
    assert_same_jobs(stacked, basic, output)
    for many, one in zip(stacked, basic):
        where = f"job {one.folder.name} ({' '.join(one.record['overrides'])})"
        assert many.record["status"] == "completed", where
        assert many.first_loss() is not None  # the first losses were compared
        assert _epoch_rows(many) == _epoch_rows(one) == list(range(one.record["epochs"])), where
        assert _learning_rates(many) == pytest.approx(_learning_rates(one), rel=1e-6), where  # its own schedule
        assert _pictures(many) == _pictures(one), where
        if case == "epochs-plateau":  # it did reduce the lr on its own val/rmse
            assert min(_learning_rates(one)) < max(_learning_rates(one)), where
        for name in one.checkpoints:
            assert _state_shapes(many, name) == _state_shapes(one, name), (where, name)
            assert _saved_epoch(many, name) == _saved_epoch(one, name), (where, name)
            _assert_same_schedule_state(many, one, name)  # resumes as its single run would
    epochs = {job.record["epochs"] for job in basic}
    if len(epochs) > 1:  # the shorter members end first and the stack's epoch lines say so
        shortest = min(epochs)
        assert f"finished ({shortest} epochs)" in output, output[-3000:]

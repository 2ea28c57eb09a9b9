"""`model.hidden` widths in real stacked sweeps (issue 26 part 3): a grid over widths is one stack whose members are
the basic launcher's single runs, with checkpoints of their own narrow networks that eval.py takes; an Optuna batch
over widths and dropout is one stack."""

from __future__ import annotations

import pytest
import torch

from mlplab.eval import evaluate
from mlplab.run.record import read_run_record
from tests.helpers.housing_sweeps import QUIET, Job, assert_same_jobs, housing_data, sweep
from tests.helpers.runs import job_folders, run_train_process
from tests.helpers.searches import search_args

GRID = ["model.hidden=[16],[32]", "seed=1,2"]


def _state_shapes(job: Job, name: str) -> dict[str, tuple[int, ...]]:
    checkpoint = torch.load(job.folder / "checkpoints" / name, weights_only=True)
    return {key: tuple(value.shape) for key, value in checkpoint["state_dict"].items()}


def _optimizer_shapes(job: Job) -> list[tuple[int, ...]]:
    checkpoint = torch.load(job.folder / "checkpoints" / "last.ckpt", weights_only=True)
    (state,) = checkpoint["optimizer_states"]
    return [tuple(v.shape) for k in sorted(state["state"]) for v in state["state"][k].values() if v.dim() > 0]


def test_a_grid_over_widths_is_one_stack_of_single_runs(tmp_path, compose_config):
    data = [o for o in housing_data(tmp_path) if o != "model.hidden=[16]"]
    assert len(data) == len(housing_data(tmp_path)) - 1 and "model.hidden=[16]" in QUIET
    stacked, output = sweep(data, tmp_path / "stacked", "stacked", "optimizer=adamw", *GRID)
    basic, _ = sweep(data, tmp_path / "basic", "basic", "optimizer=adamw", *GRID)

    line = next((line for line in output.splitlines() if "stack of 4 jobs (#0, #1, #2, #3)" in line), output[-3000:])
    assert "model.hidden" in line.partition("differing in")[2], line
    assert_same_jobs(stacked, basic, output)
    for many, one in zip(stacked, basic):
        assert many.first_loss() is not None  # the first losses were compared
        for name in one.checkpoints:  # its own narrow network, not the padded one
            assert _state_shapes(many, name) == _state_shapes(one, name), (one.folder.name, name)
        # its optimizer state in last.ckpt (a resume as a single run takes it) has its narrow shapes too
        assert _optimizer_shapes(many) == _optimizer_shapes(one), one.folder.name
    narrow = next(job for job in stacked if "model.hidden=[16]" in job.record["overrides"])
    assert _state_shapes(narrow, "last.ckpt")["network.layers.1.weight"] == (16, 8)

    # eval.py on the narrow member's folder (its best checkpoint) gives the test metrics its own test gave
    metrics = evaluate(
        compose_config(f"ckpt_path={narrow.folder}", f"paths.data_dir={tmp_path / 'data'}", config_name="eval")
    )
    for key in ("test/loss", "test/rmse"):
        assert metrics[key] == pytest.approx(narrow.record["metrics"][key], rel=1e-5), key


@pytest.mark.slow
def test_an_optuna_batch_over_widths_and_dropout_is_one_stack(tiny_mnist, tmp_path):
    folder = tmp_path / "search"
    args = search_args(
        tiny_mnist,
        folder,
        "hydra/launcher=stacked",
        "optimizer=adam",
        "hydra.sweeper.params.optimizer=adam",  # the shipped search also picks the optimizer: another stack each
        "hydra.sweeper.pruner=null",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.n_jobs=4",
        epochs=1,
    )
    result = run_train_process(*args)
    output = result.stdout + result.stderr
    assert "stack of 4 jobs (#0, #1, #2, #3) differing in" in output, output[-3000:]
    line = next(line for line in output.splitlines() if "stack of 4 jobs" in line)
    assert "model.hidden" in line and "model.dropout" in line, line
    records = [read_run_record(job) for job in job_folders(folder)]
    assert [r["status"] for r in records] == ["completed"] * 4, [r.get("error") for r in records]
    assert len({str(r["metrics"]["val/loss"]) for r in records}) == 4

"""The keys people tune stack (issue 26, part 3): a grid of 2 values x 2 seeds over one of them is one stack under
`hydra/launcher=stacked`, and each member is its single run: the basic launcher's first loss (to 1e-5), test metrics
(to 1e-3), checkpoint names, and checkpoints that load as the single run's (the same state_dict keys and shapes)."""

from __future__ import annotations

import pytest
import torch

from tests.helpers.housing_sweeps import Job, assert_same_jobs, housing_data, sweep

SEEDS = "seed=1,2"
# each key with a grid over two of its values (and what the values need to mean something)
CASES = {
    "adam weight_decay": ["optimizer=adam", "optimizer.weight_decay=0,0.1"],
    "adamw weight_decay": ["optimizer=adamw", "optimizer.weight_decay=0.01,0.5"],
    "sgd weight_decay": ["optimizer=sgd", "lr=0.05", "optimizer.weight_decay=0,0.1"],
    "sgd momentum": ["optimizer=sgd", "lr=0.05", "optimizer.momentum=0,0.9"],
    "sgd nesterov": ["optimizer=sgd", "lr=0.05", "optimizer.momentum=0.9", "optimizer.nesterov=false,true"],
    "dropout": ["model.dropout=0,0.3"],  # 0: its MLP has no Dropout layer (its checkpoint's keys say so)
    "input_dropout": ["model.input_dropout=0.1,0.3", "model.dropout=0.2"],
}
FAST = "sgd momentum"  # the representative case every `make test` runs


def _state_shapes(job: Job, name: str) -> dict[str, tuple[int, ...]]:
    checkpoint = torch.load(job.folder / "checkpoints" / name, weights_only=True)
    return {key: tuple(value.shape) for key, value in checkpoint["state_dict"].items()}


@pytest.mark.parametrize(
    "case", [pytest.param(name, marks=[] if name == FAST else [pytest.mark.slow]) for name in CASES]
)
def test_a_grid_over_a_tuned_key_is_one_stack_of_single_runs(tmp_path, case):
    data = housing_data(tmp_path)
    overrides = [*CASES[case], SEEDS]
    stacked, output = sweep(data, tmp_path / "stacked", "stacked", *overrides)
    basic, _ = sweep(data, tmp_path / "basic", "basic", *overrides)

    assert "stack of 4 jobs" in output, output[-3000:]  # one stack: the key varies inside it
    assert_same_jobs(stacked, basic, output)
    for many, one in zip(stacked, basic):
        assert many.first_loss() is not None  # the first losses were compared
        for name in one.checkpoints:
            assert _state_shapes(many, name) == _state_shapes(one, name), (one.folder.name, name)

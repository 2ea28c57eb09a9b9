"""The data keys people tune stack (issue 26, part 3): `data.label_smoothing` (each member's own loss) and
`data.max_shift` (each member's own shifts, from its own generator, before its dropout masks). A grid of 2 values x 2
seeds over one of them is one stack, each member its single run (first loss to 1e-5, test metrics to 1e-3, checkpoint
names, checkpoints that load as single runs); the grids README's Experiments ran to tune mnist_mlp and
fashion_mnist_mlp group into the stacks they should."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from mlplab.config.compose import compose_run_config
from mlplab.config.location import PROJECT_ROOT
from mlplab.data.images import MNISTDataModule
from mlplab.models.tasks import ClassificationTask
from mlplab.run.trained import load_trained_run
from mlplab.sweeps.stacked.grouping import group_jobs
from mlplab.sweeps.stacked.member_data import MemberLosses, augment_members
from tests.conftest import make_idx_dataset, tiny_overrides
from tests.helpers.housing_sweeps import QUIET, Job, assert_same_jobs, sweep

SEEDS = "seed=1,2"
# each key with a grid over two of its values; dropout on: a member's masks come after its shifts from one generator
CASES = {
    "max_shift": ["data.max_shift=1,2", "model.input_dropout=0.1", "model.dropout=0.2"],
    "label_smoothing": ["data.label_smoothing=0,0.1"],
}
FAST = "max_shift"  # the case every `make test` runs


def _tiny_mnist_data(tmp_path: Path) -> list[str]:
    data_dir = tmp_path / "data"
    quick = [o for o in tiny_overrides(data_dir, make_idx_dataset(data_dir)) if not o.startswith("callbacks.")]
    return [*quick, *QUIET]


def _loaded(job: Job, data_dir: Path):
    paths = OmegaConf.create({"output_root": str(job.folder.parent), "data_dir": str(data_dir), "data_mirror": None})
    return load_trained_run(job.folder, paths)


@pytest.mark.parametrize(
    "case", [pytest.param(name, marks=[] if name == FAST else [pytest.mark.slow]) for name in CASES]
)
def test_a_grid_over_a_data_key_is_one_stack_of_single_runs(tmp_path, case):
    data = _tiny_mnist_data(tmp_path)
    overrides = [*CASES[case], SEEDS]
    stacked, output = sweep(data, tmp_path / "stacked", "stacked", *overrides)
    basic, _ = sweep(data, tmp_path / "basic", "basic", *overrides)

    assert "stack of 4 jobs" in output, output[-3000:]  # one stack: the key varies inside it
    assert_same_jobs(stacked, basic, output)
    for many, one in zip(stacked, basic):
        assert many.first_loss() is not None  # the first losses were compared
        assert many.checkpoints and many.checkpoints == one.checkpoints
        # its best checkpoint is a single run's, with its own setting: eval.py and predict.py take it as one
        member, single = _loaded(many, tmp_path / "data"), _loaded(one, tmp_path / "data")
        assert member.module.task.label_smoothing == single.module.task.label_smoothing
        assert member.datamodule.max_shift == single.datamodule.max_shift
        assert member.ckpt_path.name == single.ckpt_path.name
        assert member.checkpoint["state_dict"].keys() == single.checkpoint["state_dict"].keys()


def test_each_members_slice_is_augmented_as_its_single_run_from_the_same_generator_state(tmp_path):
    shifts = [2, 0, 1]
    datamodules = [MNISTDataModule(tmp_path, max_shift=s) for s in shifts]
    x = torch.randn(len(shifts), 8, 28 * 28)
    states = []
    for seed in (1, 2, 3):
        torch.manual_seed(seed)
        states.append(torch.get_rng_state())

    expected, expected_masks = [], []
    for dm, state, images in zip(datamodules, states, x):  # each single run: its shifts, then its dropout mask
        torch.set_rng_state(state)
        expected.append(dm.augment(images.clone()))
        expected_masks.append(torch.empty(8, 16).bernoulli_(0.5))
    generators = [torch.Generator().set_state(state) for state in states]
    augmented = augment_members(x, datamodules, generators)
    masks = [torch.empty(8, 16).bernoulli_(0.5, generator=g) for g in generators]

    for i in range(len(shifts)):
        assert torch.equal(augmented[i], expected[i]), f"member {i} (max_shift={shifts[i]})"
        assert torch.equal(masks[i], expected_masks[i]), f"member {i}: its generator left elsewhere than its run's"
    assert not torch.equal(augmented[0], x[0]) and torch.equal(augmented[1], x[1])
    # no member shifts: the batch as it is, nothing drawn
    unshifted = [MNISTDataModule(tmp_path, max_shift=0)] * 3
    assert augment_members(x, unshifted, generators) is x


def test_each_member_gets_its_own_tasks_loss_and_equal_tasks_share_one_call():
    tasks = [ClassificationTask(5, label_smoothing=s) for s in (0.0, 0.1, 0.0, 0.3)]
    output = torch.randn(4, 6, 5)
    target = torch.randint(0, 5, (4, 6))
    losses = MemberLosses(tasks)(output, target)
    for i, task in enumerate(tasks):
        expected = F.cross_entropy(output[i], target[i], label_smoothing=task.label_smoothing)
        torch.testing.assert_close(losses[i], expected)
    assert len(MemberLosses(tasks).groups) == 3
    shared = MemberLosses([ClassificationTask(5, label_smoothing=0.1)] * 4)
    assert len(shared.groups) == 1
    torch.testing.assert_close(shared(output, target)[2], F.cross_entropy(output[2], target[2], label_smoothing=0.1))


def _experiment_grids() -> list[list[str]]:
    """The sweeps README's Experiments section ran to tune mnist_mlp and fashion_mnist_mlp, as override lists."""
    text = (PROJECT_ROOT / "README.md").read_text()
    start = text.index("### Experiments")
    section = text[start : text.index("\n## ", start)]
    grids = []
    for line in section.splitlines():
        if not line.startswith(".venv/bin/python train.py -m "):
            continue
        words = shlex.split(line)
        if any(w in ("experiment=mnist_mlp", "experiment=fashion_mnist_mlp") for w in words):
            grids.append([w for w in words[3:] if not w.startswith("hydra/launcher=")])
    return grids


def _jobs(overrides: list[str]) -> list[list[str]]:
    """The jobs Hydra's basic sweeper makes of a sweep's overrides, in its order."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


# stack sizes of each grid, in README's order: every grid is one stack but the one over data.batch_size (a stack's
# members take the same batches' shapes)
GRID_STACKS = [[4], [2, 2], [4], [4], [2]]


def test_the_grids_that_tuned_the_mnist_experiments_stack(tmp_path):
    grids = _experiment_grids()
    assert len(grids) == len(GRID_STACKS), grids
    for grid, sizes in zip(grids, GRID_STACKS):
        cfgs = [compose_run_config([*job, "hydra/launcher=stacked"], tmp_path / "run") for job in _jobs(grid)]
        stacks = group_jobs(cfgs, max_members=16)
        assert [s.alone for s in stacks] == [None] * len(stacks), (grid, [s.alone for s in stacks])
        assert [len(s.jobs) for s in stacks] == sizes, grid
        if "data.batch_size=128,256" in grid:  # each stack holds one batch size
            for stack in stacks:
                assert len({cfgs[i].data.batch_size for i in stack.jobs}) == 1

"""Random shifts of training images (`data.max_shift`): each image moved within bounds, the border filled,
training batches only, in single runs and in stacked sweeps alike."""

import pytest
import torch

from mlplab.config.compose import compose_run_config
from mlplab.data.augment import random_shift
from mlplab.data.images import MNISTDataModule
from mlplab.train import train
from tests.conftest import tiny_overrides
from tests.helpers.callbacks import Capture
from tests.helpers.runs import job_folders, logged_values, run_train_process


def test_each_image_moves_by_its_own_offset_within_max_shift_and_the_border_is_filled():
    torch.manual_seed(0)
    h, w, n = 7, 9, 600
    images = torch.zeros(n, h, w)
    images[:, 3, 4] = 1.0  # one marked pixel: where it lands is the image's offset
    shifted = random_shift(images.reshape(n, -1), (h, w), max_shift=2, fill=-1.0).view(n, h, w)

    offsets = set()
    for image in shifted:
        ((row, col),) = (image == 1).nonzero().tolist()
        dy, dx = row - 3, col - 4
        assert abs(dy) <= 2 and abs(dx) <= 2
        offsets.add((dy, dx))
        # the rows and columns the shift uncovered hold the fill; the rest is the image's own
        assert int((image == -1).sum()) == h * w - (h - abs(dy)) * (w - abs(dx))
    assert offsets == {(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)}  # every offset is drawn


def test_no_shift_leaves_the_batch_as_it_is():
    images = torch.rand(4, 784)
    assert random_shift(images, (28, 28), max_shift=0, fill=0.0) is images


def test_a_shift_as_large_as_the_image_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"max_shift=28 must be in \[0, 28\) pixels"):
        MNISTDataModule(data_dir=tmp_path, max_shift=28)


def share_of_rows_found(rows: list[torch.Tensor], split: torch.Tensor) -> float:
    rows = torch.cat(rows)
    return float((rows[:, None, :] == split[None, :, :]).all(-1).any(1).float().mean())


@pytest.mark.parametrize("max_shift", [0, 2])
def test_training_batches_are_shifted_and_evaluation_batches_are_not(tiny_mnist, tmp_path, max_shift):
    quick = [o for o in tiny_overrides(*tiny_mnist) if not o.startswith("callbacks.")]
    overrides = [*quick, "logger=none", "baselines=false", "callbacks=none"]
    capture = "+callbacks.capture={_target_:tests.helpers.callbacks.Capture}"
    train(compose_run_config([*overrides, capture, f"data.max_shift={max_shift}"], tmp_path))
    seen = Capture.last
    # a shifted noisy image is not a training image (unless its draw was no shift: 1 in 25)
    share = share_of_rows_found(seen.train, seen.splits["train"])
    assert share == 1.0 if max_shift == 0 else share < 0.2
    assert share_of_rows_found(seen.val, seen.splits["val"]) == 1.0


@pytest.mark.slow
def test_a_stacked_sweep_shifts_each_members_training_batches(tiny_mnist, tmp_path):
    quick = [o for o in tiny_overrides(*tiny_mnist) if not o.startswith("callbacks.")]
    common = [*quick, "callbacks=lean", "baselines=false", "logger=csv", "torch_threads=1", "trainer.max_epochs=1"]
    first_losses = {}
    for max_shift in (0, 2):
        folder = tmp_path / f"shift{max_shift}"
        run_train_process(
            "-m",
            *common,
            "lr=1e-3,3e-3",
            f"data.max_shift={max_shift}",
            "hydra/launcher=stacked",
            f"hydra.sweep.dir={folder}",
        )
        first_losses[max_shift] = [logged_values(job, "train/loss")[0] for job in job_folders(folder)]
    # the same initial weights and batch order: only the shifted inputs change the first step's loss
    for plain, shifted in zip(first_losses[0], first_losses[2]):
        assert shifted != pytest.approx(plain, rel=1e-3)

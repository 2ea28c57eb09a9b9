"""The tasks' losses: label smoothing as cross-entropy against smoothed targets, set from the data config."""

import pytest
import torch

from mlplab.config.compose import compose_run_config
from mlplab.models.tasks import ClassificationTask
from mlplab.run.build import build_datamodule
from mlplab.train import train
from tests.conftest import tiny_overrides


def test_label_smoothing_is_cross_entropy_against_smoothed_targets():
    torch.manual_seed(0)
    logits, labels = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    smoothed = torch.full((6, 4), 0.1 / 4).scatter_(1, labels[:, None], 1 - 0.1 + 0.1 / 4)
    expected = -(smoothed * logits.log_softmax(-1)).sum(-1).mean()
    torch.testing.assert_close(ClassificationTask(4, label_smoothing=0.1).loss(logits, labels), expected)
    plain = ClassificationTask(4).loss(logits, labels)
    torch.testing.assert_close(plain, torch.nn.functional.cross_entropy(logits, labels))
    assert not torch.isclose(plain, expected)


def test_label_smoothing_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match=r"label_smoothing=1.0 must be in \[0, 1\)"):
        ClassificationTask(4, label_smoothing=1.0)


def test_the_data_configs_label_smoothing_reaches_the_training_loss(tiny_mnist, tmp_path):
    overrides = [*tiny_overrides(*tiny_mnist), "logger=none", "baselines=false"]
    cfg = compose_run_config([*overrides, "data.label_smoothing=0.2"], tmp_path / "smoothed")
    assert build_datamodule(cfg).task.label_smoothing == 0.2
    smoothed = train(cfg)
    plain = train(compose_run_config(overrides, tmp_path / "plain"))
    # the same seed and data: only the loss's targets differ
    assert smoothed["train/loss_epoch"] != pytest.approx(plain["train/loss_epoch"], rel=1e-3)

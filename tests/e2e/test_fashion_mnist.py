"""End to end on the real FashionMNIST, fetched and verified through the configured sources
(torchvision's download, else the Debian package dataset-fashion-mnist, else the data mirror)."""

import pytest

from mlplab.train import train

pytestmark = pytest.mark.slow


def test_one_epoch_on_real_fashion_mnist_beats_the_logistic_regression_baseline(compose_config):
    cfg = compose_config(
        "data=fashion_mnist",
        "data.batch_size=128",
        "trainer.max_epochs=1",
        "accelerator=cpu",
        "trainer.enable_progress_bar=false",
    )
    metrics = train(cfg)
    assert metrics["test/acc"] >= 0.83
    assert 0.78 <= metrics["baseline/logistic_regression/acc"] < metrics["test/acc"]


def test_two_epochs_of_the_tuned_fashion_mnist_experiment_beat_the_logistic_regression_baseline(compose_config):
    cfg = compose_config(
        "experiment=fashion_mnist_mlp", "trainer.max_epochs=2", "accelerator=cpu", "trainer.enable_progress_bar=false"
    )
    metrics = train(cfg)
    assert metrics["test/acc"] >= 0.85
    assert metrics["baseline/logistic_regression/acc"] < metrics["test/acc"]

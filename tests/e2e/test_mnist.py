"""End to end on the real MNIST, fetched and verified through the configured sources."""

import pytest

from mlplab.train import train

pytestmark = pytest.mark.slow


def test_one_epoch_on_real_mnist_reaches_95_percent_test_accuracy(compose_config):
    cfg = compose_config("trainer.max_epochs=1", "accelerator=cpu", "trainer.enable_progress_bar=false")
    metrics = train(cfg)
    assert metrics["test/acc"] >= 0.95
    assert metrics["val/acc"] >= 0.95


def test_two_epochs_of_the_tuned_mnist_experiment_reach_96_percent_test_accuracy(compose_config):
    """experiment=mnist_mlp (input and hidden dropout, shifted training images, one cycle) in 2 of its 35 epochs."""
    cfg = compose_config(
        "experiment=mnist_mlp", "trainer.max_epochs=2", "accelerator=cpu", "trainer.enable_progress_bar=false"
    )
    assert cfg.model.input_dropout > 0 and cfg.data.max_shift > 0
    metrics = train(cfg)
    assert metrics["test/acc"] >= 0.96  # 96.8% measured; all 35 epochs: 99.0% (README, Experiments)

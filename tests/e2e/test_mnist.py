"""End to end on the real MNIST, fetched and verified through the configured sources."""

import pytest

from mlplab.train import train

pytestmark = pytest.mark.slow


def test_one_epoch_on_real_mnist_reaches_95_percent_test_accuracy(compose_config):
    cfg = compose_config("trainer.max_epochs=1", "accelerator=cpu", "trainer.enable_progress_bar=false")
    metrics = train(cfg)
    assert metrics["test/acc"] >= 0.95
    assert metrics["val/acc"] >= 0.95

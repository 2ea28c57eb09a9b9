"""A NaN or infinite training loss stops the run early, naming the step and the learning rate."""

import math
import re

import pytest

from mlplab.train import train
from mlplab.utils.errors import DivergedError
from tests.conftest import tiny_overrides
from tests.helpers.callbacks import PROBE, Probe


def test_a_diverging_learning_rate_stops_the_run_at_once_and_says_why(compose_config, tiny_mnist, tmp_path):
    # 500 training images in batches of 32: 16 steps per epoch; the check runs every 4 steps
    cfg = compose_config(
        *tiny_overrides(*tiny_mnist),
        "optimizer=sgd",
        "lr=1e4",
        "trainer.max_epochs=5",
        "model.hidden=[32]",
        "trainer.log_every_n_steps=4",
        PROBE,
    )
    with pytest.raises(DivergedError) as error:
        train(cfg)
    message = str(error.value)
    match = re.search(r"the training loss became (nan|inf) at step (\d+) \(epoch 0\)", message)
    assert match, message
    assert "likely cause is a learning rate too large for this model (lr=10000 at the time)" in message
    assert "try a smaller lr (e.g. lr=1000)" in message
    bad = int(match.group(2))
    assert bad < 16  # in the first epoch of five
    # the step named is the first non-finite loss, and the run stopped at the next check (every 4 steps) after it
    losses = Probe.last.losses  # every step's loss but the last one's: the check raised before the probe saw it
    assert all(math.isfinite(loss) for loss in losses[:bad])
    assert bad == len(losses) or not math.isfinite(losses[bad])
    stop = (bad // 4 + 1) * 4
    assert (Probe.last.steps, Probe.last.epochs, len(losses)) == (stop, 0, stop - 1)
    assert Probe.last.exception is error.value
    # nothing was checkpointed from the diverged weights
    assert not list((tmp_path / "run").rglob("*.ckpt"))


def test_a_healthy_run_is_not_stopped(compose_config, tiny_mnist):
    cfg = compose_config(
        *tiny_overrides(*tiny_mnist), "trainer.max_epochs=1", "trainer.log_every_n_steps=3", "model.hidden=[32]"
    )
    assert train(cfg)["test/acc"] > 0.2

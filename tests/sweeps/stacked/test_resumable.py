"""A member's checkpoints carry Lightning's loop counters as a single run's do, at an epoch's end and mid-epoch
(where a stop signal saves): compared with real single-run checkpoints, for each kind of scheduler interval."""

from __future__ import annotations

import signal

import pytest
import torch

from mlplab.sweeps.stacked.resumable import loops_state
from mlplab.train import train
from tests.conftest import tiny_overrides
from tests.helpers.callbacks import interrupt
from tests.helpers.runs import STEPS_PER_EPOCH

VAL_BATCHES = 2  # 100 validation images in batches of 64


@pytest.mark.parametrize(("scheduler", "interval"), [("none", None), ("step", "epoch"), ("onecycle", "step")])
def test_loop_counters_equal_a_single_runs_at_an_epochs_end_and_after_a_batch(
    compose_config, tiny_mnist, tmp_path, scheduler, interval
):
    cfg = compose_config(
        *tiny_overrides(*tiny_mnist),
        "callbacks=lean",
        "logger=csv",
        "baselines=false",
        f"scheduler={scheduler}",
        interrupt(1, 5, signal.SIGTERM),
    )
    with pytest.raises(SystemExit):
        train(cfg)
    folder = tmp_path / "run" / "checkpoints"
    ends_epoch_0 = torch.load(folder / "best-epoch000.ckpt", weights_only=False)
    stopped_mid_epoch_1 = torch.load(folder / "last.ckpt", weights_only=False)
    assert stopped_mid_epoch_1["global_step"] == STEPS_PER_EPOCH + 6

    expected_end = loops_state(0, STEPS_PER_EPOCH, STEPS_PER_EPOCH, VAL_BATCHES, interval, epoch_done=True)
    expected_end["fit_loop"]["state_dict"] = {"combined_loader": [{"epoch": 0, "served": STEPS_PER_EPOCH}]}
    assert ends_epoch_0["loops"] == expected_end
    expected_mid = loops_state(1, 6, STEPS_PER_EPOCH, VAL_BATCHES, interval, epoch_done=False)
    expected_mid["fit_loop"]["state_dict"] = {"combined_loader": [{"epoch": 1, "served": 6}]}
    assert stopped_mid_epoch_1["loops"] == expected_mid

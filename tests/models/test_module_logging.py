"""What SupervisedModule logs, and when: epoch metrics averaged over the epoch, step metrics at the log steps."""

import csv
from pathlib import Path

import pytest
import torch

from mlplab.config.validation import validate_config
from mlplab.models.module import StageMetrics
from mlplab.models.tasks import ClassificationTask
from mlplab.train import train
from mlplab.utils.build import build_datamodule, build_module
from mlplab.utils.errors import ConfigError
from tests.conftest import tiny_overrides


def _rows(cfg) -> list[dict[str, str]]:
    return list(csv.DictReader(open(Path(cfg.paths.output_dir) / "csv" / "metrics.csv")))


def test_the_epoch_loss_is_the_sample_weighted_mean_of_that_epochs_step_losses(compose_config, tiny_mnist, monkeypatch):
    monkeypatch.setattr(StageMetrics, "flush_every", 3)  # metrics updated mid-epoch too
    # 500 training images in batches of 32: fifteen full batches and one of 20, every step logged
    cfg = compose_config(*tiny_overrides(*tiny_mnist), "trainer.log_every_n_steps=1", "logger=csv")
    train(cfg)
    rows = _rows(cfg)
    for epoch in ("0", "1"):
        steps = [float(r["train/loss"]) for r in rows if r["epoch"] == epoch and r.get("train/loss")]
        sizes = [32] * 15 + [20]
        assert len(steps) == len(sizes)
        expected = sum(loss * n for loss, n in zip(steps, sizes)) / sum(sizes)
        (epoch_loss,) = [
            float(r["train/loss_epoch"]) for r in rows if r["epoch"] == epoch and r.get("train/loss_epoch")
        ]
        assert epoch_loss == pytest.approx(expected, rel=1e-5)  # this epoch's steps only, not a running total


def test_stage_metrics_see_every_kept_step_once_whatever_the_flushes():
    metrics = StageMetrics(ClassificationTask(3), "val")
    metrics.flush_every = 2
    torch.manual_seed(0)
    outputs, targets = torch.randn(7, 3), torch.randint(0, 3, (7,))
    losses = torch.rand(3)
    for (start, stop), loss in zip([(0, 3), (3, 6), (6, 7)], losses):
        metrics.keep(loss, outputs[start:stop], targets[start:stop])
    metrics.update()
    assert metrics.loss.compute() == pytest.approx(float((3 * losses[0] + 3 * losses[1] + losses[2]) / 7))
    accuracy = (outputs.argmax(-1) == targets).float().mean()
    assert metrics.values.compute()["val/acc"] == pytest.approx(float(accuracy))


def test_step_loss_and_learning_rate_are_logged_on_every_nth_step_only(compose_config, tiny_mnist):
    cfg = compose_config(*tiny_overrides(*tiny_mnist), "trainer.log_every_n_steps=5", "logger=csv")
    train(cfg)
    step_rows = [r for r in _rows(cfg) if r.get("train/loss")]
    # 2 epochs of 16 steps: Lightning writes steps 4, 9, ..., 29 to the loggers
    assert [int(r["step"]) for r in step_rows] == [4, 9, 14, 19, 24, 29]
    assert all(float(r["lr"]) == pytest.approx(1e-3) for r in step_rows)


def test_validation_and_test_metrics_are_logged_once_per_epoch(compose_config, tiny_mnist):
    cfg = compose_config(*tiny_overrides(*tiny_mnist), "logger=csv")
    metrics = train(cfg)
    rows = _rows(cfg)
    assert [r["epoch"] for r in rows if r.get("val/acc")] == ["0", "1"]
    assert len([r for r in rows if r.get("test/acc")]) == 1
    assert 0.0 <= metrics["val/acc"] <= 1.0 and metrics["val/loss"] > 0


def test_compile_switch_compiles_the_network_and_checkpoints_keep_plain_keys(compose_config, tiny_mnist):
    # the eager backend runs torch.compile's tracing without generating code (inductor takes a minute here)
    cfg = compose_config(
        *tiny_overrides(*tiny_mnist), "compile={backend:eager}", "trainer.max_epochs=1", "model.hidden=[16]"
    )
    metrics = train(cfg)
    assert torch.isfinite(torch.tensor(metrics["test/loss"]))
    saved = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    assert "network.layers.1.weight" in saved["state_dict"]  # no `_orig_mod.` prefix
    assert saved["hyper_parameters"]["compile"] == {"backend": "eager"}
    module = build_module(cfg, build_datamodule(cfg))
    module.configure_model()
    assert module.network._compiled_call_impl is not None  # what nn.Module.compile() sets


@pytest.mark.parametrize("value", ["fast", "{mode:max-autotune,fast:true}"])
def test_compile_must_be_a_switch_or_options(compose_config, tiny_mnist, value):
    cfg = compose_config(*tiny_overrides(*tiny_mnist), f"compile={value}")
    with pytest.raises(ConfigError, match="compile=.* is invalid: must be true, false or a mapping of torch.compile's"):
        validate_config(cfg)


def test_bf16_autocast_trains_on_the_cpu(compose_config, tiny_mnist):
    cfg = compose_config(*tiny_overrides(*tiny_mnist), "trainer.precision=bf16-mixed", "trainer.max_epochs=1")
    assert torch.isfinite(torch.tensor(train(cfg)["test/loss"]))

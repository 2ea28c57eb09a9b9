"""What SupervisedModule logs, and when: epoch metrics averaged over the epoch, step metrics at the log steps."""

import csv
from functools import partial
from pathlib import Path

import pytest
import torch
from torch import nn

from mlplab.config.validation import validate_config
from mlplab.models.mlp import MLP
from mlplab.models.module import StageMetrics, SupervisedModule
from mlplab.models.tasks import ClassificationTask
from mlplab.run.build import build_datamodule, build_module
from mlplab.train import train
from mlplab.utils.errors import ConfigError
from tests.conftest import tiny_overrides
from tests.helpers.callbacks import HookNames


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


def test_the_current_hook_name_is_stored_and_other_attributes_still_register(compose_config, tiny_mnist, monkeypatch):
    # SupervisedModule.__setattr__ stores `_current_fx_name` without nn.Module's registries: Lightning reads it back
    module = SupervisedModule(MLP(784, 10, hidden=[8]), ClassificationTask(10), partial(torch.optim.SGD, lr=0.1))
    module._current_fx_name = "training_step"
    assert module._current_fx_name == "training_step" and vars(module)["_current_fx_name"] == "training_step"
    module._current_fx_name = None
    assert module._current_fx_name is None
    # anything else goes through nn.Module: submodules and parameters are registered, trained and saved
    module.head = nn.Linear(10, 2)
    module.scale = nn.Parameter(torch.ones(3))
    assert module._modules["head"] is module.head and module._parameters["scale"] is module.scale
    assert {"head.weight", "head.bias", "scale"} <= module.state_dict().keys()
    assert any(p is module.scale for p in module.parameters()) and "head" not in vars(module)
    with pytest.raises(TypeError, match="cannot assign"):  # nn.Module's own check still runs
        module.scale = torch.zeros(3)

    # in a real run, steps and callbacks log through the hook name Lightning set
    monkeypatch.setattr(HookNames, "seen", [])
    cfg = compose_config(
        *tiny_overrides(*tiny_mnist),
        "trainer.max_epochs=1",
        "model.hidden=[8]",
        "logger=csv",
        "+callbacks.hook_names={_target_:tests.helpers.callbacks.HookNames}",
    )
    metrics = train(cfg)
    assert set(HookNames.seen) == {("train", "on_train_batch_end"), ("val", "on_validation_batch_end")}
    assert len(HookNames.seen) == 16 + 2  # 16 training batches, 100 validation images in batches of 64
    assert metrics["probe/train"] == 2.0 and metrics["probe/val"] == 1.0
    assert len([r for r in _rows(cfg) if r.get("train/loss")]) == 16  # the module's own self.log in training_step

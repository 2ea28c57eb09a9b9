"""Empty per-batch hooks are switched off; the hooks a callback implements still run at every batch."""

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from mlplab.data.batches import TensorBatches
from mlplab.run.build import build_callbacks, build_loggers, build_trainer
from mlplab.run.hooks import BATCH_HOOKS, skip_empty_batch_hooks
from tests.conftest import tiny_overrides


class CountsBatches(Callback):
    def __init__(self) -> None:
        self.train_batches = 0
        self.epochs = 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.train_batches += 1

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epochs += 1


class Regression(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(3, 1)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.mse_loss(self.layer(x).squeeze(1), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_only_the_empty_batch_hooks_are_switched_off_and_the_others_still_run():
    counter = CountsBatches()
    steps_seen = []
    counter.on_before_zero_grad = lambda trainer, module, optimizer: steps_seen.append(
        trainer.global_step
    )  # on the instance
    skip_empty_batch_hooks([counter])
    assert counter.on_train_batch_start is None and counter.on_before_backward is None
    assert callable(counter.on_train_batch_end) and callable(
        counter.on_train_epoch_end
    )  # implemented, or not per batch

    trainer = L.Trainer(
        max_epochs=2,
        callbacks=[counter],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    x = torch.randn(40, 3)
    trainer.fit(Regression(), train_dataloaders=TensorBatches(x, x.sum(1), batch_size=8))
    assert (counter.train_batches, counter.epochs) == (10, 2)
    assert steps_seen == list(range(10))


def test_the_run_trainer_switches_off_the_empty_batch_hooks_of_every_callback(compose_config, tiny_mnist):
    cfg = compose_config(*tiny_overrides(*tiny_mnist))
    trainer = build_trainer(cfg, build_callbacks(cfg), build_loggers(cfg))
    for callback in trainer.callbacks:
        for name in BATCH_HOOKS:
            implemented = getattr(type(callback), name) is not getattr(Callback, name)
            assert callable(getattr(callback, name)) == implemented, (type(callback).__name__, name)
    # the checkpoint (stops at a batch on SIGTERM) and the divergence check act at every training batch;
    # the weight pictures do not
    kinds = {type(c).__name__: c for c in trainer.callbacks}
    assert callable(kinds["ResumableCheckpoint"].on_train_batch_end) and callable(
        kinds["DivergenceCheck"].on_train_batch_end
    )
    assert kinds["FirstLayerWeights"].on_train_batch_end is None

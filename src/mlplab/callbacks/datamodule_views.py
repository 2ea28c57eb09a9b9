"""What the picture callbacks read from the run: a split through the network, and the data's images as stored.

The one place that knows how an mlplab data module keeps its splits (TensorDataModule).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import lightning as L
import numpy as np
import torch

from mlplab.callbacks.drawing import to_uint8


@contextmanager
def evaluating(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """The module in eval mode (dropout off, batch norm frozen), restored afterwards."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def predict_split(
    trainer: L.Trainer, pl_module: L.LightningModule, split: str = "test"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(inputs, targets, network outputs) of a whole split on the module's device, in evaluation batches."""
    datamodule = trainer.datamodule
    x, y = datamodule.split_on_device(split, pl_module.device)
    with torch.no_grad(), evaluating(pl_module):
        outputs = torch.cat([pl_module(chunk) for chunk in x.split(datamodule.eval_batch_size)])
    return x, y, outputs


def image_shape(trainer: L.Trainer) -> tuple[int, ...] | None:
    """The data's image shape, e.g. (28, 28), or None for data that is not images (tabular)."""
    shape = getattr(trainer.datamodule, "image_shape", None)
    return tuple(shape) if shape else None


def raw_images(trainer: L.Trainer, split: str, index: torch.Tensor) -> np.ndarray:
    """The stored (un-normalised) pixels of some images of a split, as uint8 (N, H, W) for display."""
    x = trainer.datamodule.splits[split][0][index.cpu()]
    images = x.reshape(len(x), *image_shape(trainer))
    return images.numpy() if images.dtype == torch.uint8 else to_uint8(images)

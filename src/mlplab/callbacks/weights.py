"""Pictures of the first layer's weights: what each unit of the network looks for in its input."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from mlplab.callbacks.datamodule_views import image_shape
from mlplab.callbacks.drawing import new_figure, tile_grid
from mlplab.callbacks.picture import PictureCallback


def linear_layers(network: nn.Module) -> list[nn.Linear]:
    layers = [m for m in network.modules() if isinstance(m, nn.Linear)]
    if not layers:
        raise ValueError(f"{type(network).__name__} has no nn.Linear layer whose weights could be drawn")
    return layers


def weight_tiles(weight: torch.Tensor, shape: Sequence[int], max_tiles: int, scale: int = 1) -> np.ndarray:
    """One tile per unit (row of `weight`) in the input's `shape`, in a square-ish grid, each tile scaled for
    contrast on its own: mid-grey is 0, white its largest positive weight, black its largest negative one."""
    rows = weight[:max_tiles].detach().float().cpu()
    peaks = rows.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)
    tiles = ((rows / peaks + 1) * 127.5).round().to(torch.uint8).reshape(len(rows), *shape)
    grid = tile_grid(tiles.numpy(), columns=math.ceil(math.sqrt(len(rows))))
    return grid.repeat(scale, axis=0).repeat(scale, axis=1)


def weight_heatmap(weight: torch.Tensor, feature_names: Sequence[str], max_rows: int) -> Figure:
    """Units x input features, coloured by weight (red positive, blue negative), features named on the axis."""
    rows = weight[:max_rows].detach().float().cpu().numpy()
    peak = float(np.abs(rows).max()) or 1.0
    figure = new_figure(max(4.0, 0.5 * rows.shape[1] + 2), max(2.5, 0.18 * len(rows) + 1.5))
    ax = figure.add_subplot()
    shown = ax.imshow(rows, cmap="RdBu_r", vmin=-peak, vmax=peak, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(rows.shape[1]), feature_names, rotation=45, ha="right")
    ax.set_ylabel("unit")
    figure.colorbar(shown, ax=ax, label="weight")
    return figure


class FirstLayerWeights(PictureCallback):
    """Draws the first layer's weights after every `every_n_epochs` epochs and after the last one.

    Image data: a grid of tiles in the image's shape, one per hidden unit (one per class for a linear model), at
    most `max_units`, each `scale` times enlarged. Other data: a heat map of units x features, named by the task's
    `feature_names`. Saved as <dirpath>/weights/first_layer_epochNNN.png; W&B key `weights/first_layer`.
    """

    def __init__(self, dirpath: str | Path, every_n_epochs: int = 1, max_units: int = 100, scale: int = 2) -> None:
        super().__init__(dirpath)
        self.every_n_epochs = every_n_epochs
        self.max_units = max_units
        self.scale = scale

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        last = epoch + 1 == trainer.max_epochs or trainer.should_stop
        if trainer.is_global_zero and ((epoch + 1) % self.every_n_epochs == 0 or last):
            self.draw(trainer, pl_module, epoch)

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int) -> Path:
        layers = linear_layers(pl_module)
        weight = layers[0].weight
        units = "class" if len(layers) == 1 and weight.shape[0] > 1 else "unit"
        shown = min(len(weight), self.max_units)
        shape = image_shape(trainer)
        if shape and math.prod(shape) == weight.shape[1]:
            picture = weight_tiles(weight, shape, self.max_units, self.scale)
        else:
            names = list(getattr(pl_module.task, "feature_names", None) or [])
            if len(names) != weight.shape[1]:
                names = [f"x{i}" for i in range(weight.shape[1])]
            picture = weight_heatmap(weight, names, self.max_units)
        caption = f"epoch {epoch}: first-layer weights, one per {units} ({shown} of {len(weight)})"
        return self.publish(
            trainer,
            "weights/first_layer",
            picture,
            filename=f"weights/first_layer_epoch{epoch:03d}.png",
            caption=caption,
        )

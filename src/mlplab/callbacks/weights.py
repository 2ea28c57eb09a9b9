"""Pictures of the first layer's weights: what each unit of the network looks for in its input."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import nn

from mlplab.callbacks.datamodule_views import image_shape
from mlplab.callbacks.drawing import new_figure, tile_grid
from mlplab.callbacks.picture import PictureCallback


def linear_layers(network: nn.Module) -> list[nn.Linear]:
    layers = [m for m in network.modules() if isinstance(m, nn.Linear)]
    if not layers:
        raise ValueError(f"{type(network).__name__} has no nn.Linear layer whose weights could be drawn")
    return layers


def weight_tiles(weight: torch.Tensor, shape: Sequence[int], max_tiles: int) -> np.ndarray:
    """The weights of the first `max_tiles` units (rows of `weight`), each a tile in the input's `shape`, in a
    square-ish grid; NaN between and after the tiles."""
    rows = weight[:max_tiles].detach().float().cpu().numpy().reshape(-1, *shape)
    return tile_grid(rows, columns=math.ceil(math.sqrt(len(rows))), fill=np.nan)


def weight_grid_figure(
    weight: torch.Tensor, shape: Sequence[int], max_tiles: int, title: str, scale: int = 2, labels: Sequence[str] = ()
) -> Figure:
    """The tiles of `weight_tiles` on one colour scale for all (red positive, blue negative, white 0) with its colour
    bar, each weight `scale` x `scale` pixels; `labels` above the tiles (class names for a linear model's)."""
    grid = weight_tiles(weight, shape, max_tiles)
    peak = float(np.nanmax(np.abs(grid))) or 1.0
    h, w = shape
    tiles = min(len(weight), max_tiles)
    columns = math.ceil(math.sqrt(tiles))
    # room for the colour bar and the title around the grid; small grids (a linear model's 10) kept legible
    figure = new_figure(max(5.0, grid.shape[1] * scale / 100 + 1.6), max(4.0, grid.shape[0] * scale / 100 + 0.9))
    ax = figure.add_subplot()
    colours = matplotlib.colormaps["RdBu_r"].with_extremes(bad="0.35")  # dark gaps: tiles stand apart
    shown = ax.imshow(grid, cmap=colours, vmin=-peak, vmax=peak, interpolation="nearest")
    for i, label in enumerate(labels[:tiles]):
        x, y = 1 + (i % columns) * (w + 1) + w / 2, 1 + (i // columns) * (h + 1)
        ax.text(x, y, label, ha="center", va="top", fontsize=7, color="black", backgroundcolor="white")
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    figure.colorbar(shown, ax=ax, label="weight", shrink=0.8)
    return figure


def weight_heatmap(weight: torch.Tensor, feature_names: Sequence[str], max_units: int, title: str) -> Figure:
    """Input features x units, coloured by weight (red positive, blue negative), features named on the axis."""
    columns = weight[:max_units].detach().float().cpu().numpy().T
    peak = float(np.abs(columns).max()) or 1.0
    features, units = columns.shape
    # features down, units across: a hundred units make a wide picture rather than a two-metre tall one
    figure = new_figure(min(max(4.5, 2.2 + 0.06 * units), 11.0), min(max(3.0, 1.3 + 0.3 * features), 8.0))
    ax = figure.add_subplot()
    shown = ax.imshow(columns, cmap="RdBu_r", vmin=-peak, vmax=peak, aspect="auto", interpolation="nearest")
    ax.set_yticks(range(features), feature_names)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("unit")
    ax.set_title(title, fontsize=9)
    figure.colorbar(shown, ax=ax, label="weight")
    return figure


class FirstLayerWeights(PictureCallback):
    """Draws the first layer's weights after every `every_n_epochs` epochs and after the last one.

    Image data: a grid of tiles in the image's shape, one per hidden unit (one per class for a linear model, named),
    at most `max_units`, each weight `scale` x `scale` pixels, on one colour scale with its bar. Other data: a heat
    map of features x units, the features named by the task's `feature_names`. Saved as <dirpath>/weights/first_layer_epochNNN.png; W&B key `weights/first_layer`.
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
        caption = f"epoch {epoch}: first-layer weights, one per {units} ({shown} of {len(weight)})"
        if shape and math.prod(shape) == weight.shape[1]:
            classes = list(getattr(pl_module.task, "class_names", None) or [])
            labels = classes if units == "class" and len(classes) == len(weight) else []
            title = f"epoch {epoch}: class templates (a linear model's weights)" if labels else caption
            picture = weight_grid_figure(weight, shape, self.max_units, title, self.scale, labels)
        else:
            names = list(getattr(pl_module.task, "feature_names", None) or [])
            if len(names) != weight.shape[1]:
                names = [f"x{i}" for i in range(weight.shape[1])]
            picture = weight_heatmap(weight, names, self.max_units, caption)
        return self.publish(
            trainer,
            "weights/first_layer",
            picture,
            filename=f"weights/first_layer_epoch{epoch:03d}.png",
            caption=caption,
        )

"""A grid of test images the classifier gets wrong, each labelled with its true and predicted class."""

from __future__ import annotations

import logging
import math

import lightning as L
import numpy as np
from matplotlib.figure import Figure

from mlplab.callbacks.datamodule_views import image_shape, predict_split, raw_images
from mlplab.callbacks.drawing import new_figure, tile_grid
from mlplab.callbacks.picture import PictureCallback
from mlplab.models.tasks import ClassificationTask

log = logging.getLogger(__name__)

PAD = 6  # room for the labels


def labelled_grid(images: np.ndarray, labels: list[str], columns: int, title: str) -> Figure:
    """Images (N, H, W) in a grid with a small label above each (one image and N texts: fast to draw)."""
    grid = tile_grid(images, columns, pad=PAD, fill=255)
    h, w = images.shape[1:3]
    rows = -(-len(images) // columns)
    figure = new_figure(1.1 * columns, 1.2 * rows + 0.4)
    ax = figure.add_subplot()
    ax.imshow(grid, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    for i, label in enumerate(labels):
        ax.text(
            PAD + (i % columns) * (w + PAD) + w / 2,
            PAD + (i // columns) * (h + PAD) + 0.5,
            label,
            ha="center",
            va="bottom",
            fontsize=7,
            color="crimson",
        )
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    return figure


class MisclassifiedImages(PictureCallback):
    """After testing a classifier on images: the first `max_images` misclassified test images, labelled
    `true -> predicted`. Saved as <dirpath>/test/misclassified.png; W&B key `test/misclassified`.
    """

    def __init__(self, dirpath: str, max_images: int = 36) -> None:
        super().__init__(dirpath)
        self.max_images = max_images

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        task = pl_module.task
        if not trainer.is_global_zero or not isinstance(task, ClassificationTask) or image_shape(trainer) is None:
            return
        _, targets, outputs = predict_split(trainer, pl_module)
        predictions = task.predict(outputs)
        wrong = (predictions != targets).nonzero().flatten()
        if len(wrong) == 0:
            log.info("All %d test images are classified correctly: no picture of misclassified ones", len(targets))
            return
        title = f"{len(wrong)} of {len(targets)} test images misclassified (true -> predicted)"
        shown = wrong[: self.max_images]
        names = task.class_names
        labels = [f"{names[t]} -> {names[p]}" for t, p in zip(targets[shown].tolist(), predictions[shown].tolist())]
        columns = min(len(shown), math.ceil(math.sqrt(len(shown) * 1.5)))
        self.publish(
            trainer,
            "test/misclassified",
            labelled_grid(raw_images(trainer, "test", shown), labels, columns, title),
            caption=title,
        )

"""Input-gradient saliency maps: how each pixel of a test image moves each class's score."""

from __future__ import annotations

import lightning as L
import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure

from mlplab.callbacks.datamodule_views import evaluating, image_shape, raw_images
from mlplab.callbacks.drawing import new_figure, tile_grid
from mlplab.callbacks.picture import PictureCallback
from mlplab.models.tasks import ClassificationTask

PAD = 2


def input_gradients(model: torch.nn.Module, x: torch.Tensor, num_classes: int) -> torch.Tensor:
    """d score[class] / d input for every class and sample: (samples, classes, features), one backward per class.

    Samples are independent in eval mode, so the gradient of a class's summed score is each sample's own gradient.
    """
    # Lightning tests under inference mode; its tensors cannot take part in autograd, a clone made outside it can
    with torch.inference_mode(False), torch.enable_grad(), evaluating(model):
        x = x.clone().requires_grad_(True)
        scores = model(x)
        grads = [
            torch.autograd.grad(scores[:, c].sum(), x, retain_graph=c < num_classes - 1)[0] for c in range(num_classes)
        ]
    return torch.stack(grads, dim=1).detach()


def saliency_figure(images: np.ndarray, grads: torch.Tensor, class_names: list[str], row_labels: list[str]) -> Figure:
    """Row per image: the image, then one map per class (red raises the class's score, blue lowers it), the
    maps of a row sharing one colour scale so classes compare."""
    n, h, w = images.shape
    peaks = grads.abs().amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)
    unit = (grads / peaks / 2 + 0.5).cpu().numpy().reshape(n, len(class_names), h, w)
    maps = (matplotlib.colormaps["RdBu_r"](unit)[..., :3] * 255).round().astype(np.uint8)
    inputs = np.repeat(images[:, None, :, :, None], 3, axis=-1)
    tiles = np.concatenate([inputs, maps], axis=1).reshape(-1, h, w, 3)
    columns = 1 + len(class_names)
    grid = tile_grid(tiles, columns, pad=PAD, fill=255)
    figure = new_figure(0.75 * columns + 1, 0.8 * n + 0.6)
    ax = figure.add_subplot()
    ax.imshow(grid, interpolation="nearest")
    for j, name in enumerate(["input", *class_names]):
        ax.text(PAD + j * (w + PAD) + w / 2, 0, name, ha="center", va="bottom", fontsize=7)
    ax.set_yticks([PAD + i * (h + PAD) + h / 2 for i in range(n)], row_labels, fontsize=7)
    ax.set_xticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title("d class score / d input", fontsize=9, pad=12)
    return figure


class SaliencyMaps(PictureCallback):
    """After testing a classifier on images: for the first `num_images` test images, the gradient of each class's
    score with respect to the input pixels, one map per class. Saved as <dirpath>/test/saliency.png;
    W&B key `test/saliency`.
    """

    def __init__(self, dirpath: str, num_images: int = 4) -> None:
        super().__init__(dirpath)
        self.num_images = num_images

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        task = pl_module.task
        if not trainer.is_global_zero or not isinstance(task, ClassificationTask) or image_shape(trainer) is None:
            return
        x, y = trainer.datamodule.split_on_device("test", pl_module.device)
        index = torch.arange(min(self.num_images, len(x)), device=x.device)
        grads = input_gradients(pl_module, x[index], task.num_classes)
        with torch.no_grad(), evaluating(pl_module):
            predicted = task.predict(pl_module(x[index])).tolist()
        names = task.class_names
        labels = [f"true {names[t]}\npred {names[p]}" for t, p in zip(y[index].tolist(), predicted)]
        self.publish(
            trainer,
            "test/saliency",
            saliency_figure(raw_images(trainer, "test", index), grads, names, labels),
            caption="d class score / d input: red raises the class's score, blue lowers it",
        )

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
    maps of a row sharing one colour scale, shown by the row's colour bar, so classes compare."""
    n, h, w = images.shape
    maps = grads.float().cpu().numpy().reshape(n, len(class_names), h, w)
    columns = len(class_names)
    figure = new_figure(0.75 * (columns + 1) + 1.4, 0.85 * n + 0.7)
    # one strip image per row, its maps side by side (NaN gaps): a few artists draw fast, unlike a subplot per map
    axes = figure.subplots(n, 2, squeeze=False, width_ratios=[1, columns])
    colours = matplotlib.colormaps["RdBu_r"].with_extremes(bad="white")
    for i in range(n):
        peak = float(np.abs(maps[i]).max()) or 1e-12
        axes[i, 0].imshow(images[i], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        axes[i, 0].set_ylabel(row_labels[i], fontsize=7)
        strip = tile_grid(maps[i], columns, pad=PAD, fill=np.nan)
        shown = axes[i, 1].imshow(strip, cmap=colours, vmin=-peak, vmax=peak, interpolation="nearest")
        figure.colorbar(shown, ax=axes[i, 1], pad=0.01, aspect=8).ax.tick_params(labelsize=6)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
    axes[0, 0].set_title("input", fontsize=7)
    for j, name in enumerate(class_names):
        axes[0, 1].text(PAD + j * (w + PAD) + w / 2, 0, name, ha="center", va="bottom", fontsize=7)
    figure.suptitle("d class score / d input", fontsize=9)
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

"""What the picture callbacks share: drawing off-screen, saving PNGs in the run folder, handing them to W&B,
and reading the test split through the network."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import WandbLogger
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

Picture = Figure | np.ndarray  # a matplotlib figure, or a uint8 image (H, W) grey or (H, W, 3) RGB


def new_figure(width: float, height: float) -> Figure:
    """A figure drawn by Agg, outside pyplot: no global backend, no window, nothing left open."""
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_png(picture: Picture, path: Path) -> Path:
    """Write `picture` to `path` whole or not at all (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # unique per process, permissions from the umask
    try:
        if isinstance(picture, Figure):
            picture.savefig(tmp, format="png")
        else:
            Image.fromarray(picture).save(tmp, format="png")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def to_uint8(values: torch.Tensor) -> np.ndarray:
    """Scale min..max to 0..255 for display: W&B (0.31) and PIL cast floats to uint8 without rescaling."""
    values = values.detach().float().cpu()
    low, high = values.min(), values.max()
    return ((values - low) / (high - low).clamp_min(1e-12) * 255).round().to(torch.uint8).numpy()


def tile_grid(tiles: np.ndarray, columns: int, pad: int = 1, fill: int = 0) -> np.ndarray:
    """Lay N tiles of shape (h, w) or (h, w, 3) out in rows of `columns`, `pad` pixels of `fill` around each."""
    n, h, w = tiles.shape[:3]
    rows = -(-n // columns)
    grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, *tiles.shape[3:]), fill, dtype=tiles.dtype)
    for i, tile in enumerate(tiles):
        top, left = pad + (i // columns) * (h + pad), pad + (i % columns) * (w + pad)
        grid[top : top + h, left : left + w] = tile
    return grid


class PictureCallback(L.Callback):
    """Base of the picture callbacks: `publish` saves a picture as a PNG under `dirpath` (with any logger, or none)
    and logs it to each W&B logger under `key`, against the trainer's global step."""

    def __init__(self, dirpath: str | Path) -> None:
        self.dirpath = Path(dirpath)

    def publish(self, trainer: L.Trainer, key: str, picture: Picture, filename: str | None = None,
                caption: str | None = None) -> Path:
        path = save_png(picture, self.dirpath / (filename or f"{key}.png"))
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key, [str(path)], step=trainer.global_step, caption=[caption])
        return path


@contextmanager
def evaluating(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """The module in eval mode (dropout off, batch norm frozen), restored afterwards."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def predict_split(trainer: L.Trainer, pl_module: L.LightningModule, split: str = "test") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
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

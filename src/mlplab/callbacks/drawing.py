"""The drawing kit of the picture callbacks: figures drawn off-screen, image grids, PNGs written whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from mlplab.utils.files import atomic_write

Picture = Figure | np.ndarray  # a matplotlib figure, or a uint8 image (H, W) grey or (H, W, 3) RGB


def new_figure(width: float, height: float) -> Figure:
    """A figure drawn by Agg, outside pyplot: no global backend, no window, nothing left open."""
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_png(picture: Picture, path: Path) -> Path:
    """Write `picture` to `path` as a PNG, whole or not at all (utils.files.atomic_write)."""
    with atomic_write(path, "wb") as f:
        if isinstance(picture, Figure):
            picture.savefig(f, format="png")
        else:
            Image.fromarray(picture).save(f, format="png")
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

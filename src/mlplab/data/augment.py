"""Augmentation of training batches on their device: random translations of images."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shift(
    images: torch.Tensor,
    shape: tuple[int, int],
    max_shift: int,
    fill: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Flat images (N, H*W), each moved by its own random (rows, columns) in [-max_shift, max_shift]; the border
    it uncovers is `fill` (the background's value); 0 < max_shift < min(H, W) (the data module checks it). Draws from
    `generator` (on the images' device), or torch's default generator there; max_shift=0 draws nothing."""
    if max_shift == 0:
        return images
    n, (h, w) = len(images), shape
    padded = F.pad(images.view(n, h, w), (max_shift,) * 4, value=fill)
    offsets = torch.randint(0, 2 * max_shift + 1, (2, n, 1), device=images.device, generator=generator)
    rows = offsets[0] + torch.arange(h, device=images.device)  # (N, H): the padded rows each image keeps
    cols = offsets[1] + torch.arange(w, device=images.device)
    batch = torch.arange(n, device=images.device)[:, None, None]
    return padded[batch, rows[:, :, None], cols[:, None, :]].reshape(n, h * w)

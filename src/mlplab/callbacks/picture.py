"""The base of the picture callbacks: a picture saved as a PNG in the run folder, and handed to W&B."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import WandbLogger

from mlplab.callbacks.drawing import Picture, save_png


class PictureCallback(L.Callback):
    """Base of the picture callbacks: `publish` saves a picture as a PNG under `dirpath` (with any logger, or none)
    and logs it to each W&B logger under `key`, against the trainer's global step."""

    def __init__(self, dirpath: str | Path) -> None:
        self.dirpath = Path(dirpath)

    def publish(
        self, trainer: L.Trainer, key: str, picture: Picture, filename: str | None = None, caption: str | None = None
    ) -> Path:
        path = save_png(picture, self.dirpath / (filename or f"{key}.png"))
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key, [str(path)], step=trainer.global_step, caption=[caption])
        return path

"""MNIST-style image data sets (MNIST, FashionMNIST): four IDX files, 28x28 greyscale images, ten classes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from mlplab.data.augment import random_shift
from mlplab.data.idx import read_idx
from mlplab.data.sources import Source, fetch_verified
from mlplab.data.splits import PoolSplit, seeded_order
from mlplab.data.tensor_datamodule import Split, TensorDataModule
from mlplab.models.tasks import ClassificationTask

TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"


class IDXImageDataModule(TensorDataModule):
    """The common part of MNIST and FashionMNIST; subclasses set the class attributes.

    Args:
        data_dir: root of the data cache; files live in `<data_dir>/<name>/raw` (torchvision's layout).
        sources: where to get missing files, tried in order (mlplab.data.sources).
        val_size: images carved from the official training set for validation (the fixed split).
        split_seed: seeds that carving, or the folds, so every run and sweep job validates on the same images.
        folds, fold: k-fold cross-validation instead: the official training set in `folds` folds, stratified
            by class, fold `fold` validating; None, None: the fixed split.
        files: name -> md5 of the four raw files; defaults to the official ones.
        mean, std: normalisation of pixel values in [0, 1]; None computes them on the training split.
    """

    name: str
    official_files: Mapping[str, str]
    class_names: Sequence[str]
    default_mean: float | None = None
    default_std: float | None = None
    image_shape = (28, 28)
    known_rows = (
        60_000  # training images in the official files, which val_size is carved from (mlplab.config checks it)
    )

    def __init__(
        self,
        data_dir: str | Path,
        sources: Sequence[Source] = (),
        batch_size: int = 64,
        eval_batch_size: int = 1024,
        val_size: int = 5000,
        seed: int = 0,
        split_seed: int = 0,
        files: Mapping[str, str] | None = None,
        mean: float | None = None,
        std: float | None = None,
        folds: int | None = None,
        fold: int | None = None,
        label_smoothing: float = 0.0,
        max_shift: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, seed=seed)
        self.raw_dir = Path(data_dir) / self.name / "raw"
        self.sources = list(sources)
        self.val_size = val_size
        self.split_seed = split_seed
        self.pool_split = PoolSplit(folds=folds, fold=fold, seed=split_seed)
        self.files = dict(files or self.official_files)
        self.mean = mean if mean is not None else self.default_mean
        self.std = std if std is not None else self.default_std
        self.label_smoothing = label_smoothing
        if not 0 <= max_shift < min(self.image_shape):
            raise ValueError(f"max_shift={max_shift} must be in [0, {min(self.image_shape)}) pixels")
        self.max_shift = max_shift

    @property
    def input_size(self) -> int:
        return self.image_shape[0] * self.image_shape[1]

    @property
    def task(self) -> ClassificationTask:
        return ClassificationTask(len(self.class_names), self.class_names, label_smoothing=self.label_smoothing)

    def prepare_data(self) -> None:
        fetch_verified(self.raw_dir, self.files, self.sources, what=self.name)

    def load_splits(self) -> dict[str, Split]:
        train_x, train_y = self._read_pair(TRAIN_IMAGES, TRAIN_LABELS)
        test_x, test_y = self._read_pair(TEST_IMAGES, TEST_LABELS)
        pool = seeded_order(len(train_x), self.split_seed)
        train_idx, val_idx = self.pool_split.split(pool, self.val_size, labels=train_y)
        if self.mean is None or self.std is None:
            pixels = train_x[train_idx].float().div_(255)
            self.mean, self.std = pixels.mean().item(), pixels.std().item()
        return {
            "train": (train_x[train_idx], train_y[train_idx]),
            "val": (train_x[val_idx], train_y[val_idx]),
            "test": (test_x, test_y),
        }

    def prepare_inputs(self, raw: torch.Tensor) -> torch.Tensor:
        """uint8 images, (N, 28, 28) or flat (N, 784), to flat floats: scaled to [0, 1] and normalised."""
        if raw.dtype != torch.uint8:  # a float input would be scaled twice (and changed in place)
            raise TypeError(f"{self.name} inputs must be uint8 images (pixel values 0-255), not {raw.dtype}")
        if self.mean is None or self.std is None:
            raise RuntimeError(f"{self.name}: no normalisation yet: call setup() or load_state_dict() first")
        return raw.reshape(len(raw), -1).float().div_(255).sub_(self.mean).div_(self.std)

    def to_device(self, x: torch.Tensor, device: torch.device) -> torch.Tensor:
        # uint8 travels (4x smaller); the float conversion happens once, on the device
        return self.prepare_inputs(x.to(device))

    def augment(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        # a black pixel, normalised, fills the border a shift uncovers
        return random_shift(x, self.image_shape, self.max_shift, fill=-self.mean / self.std, generator=generator)

    def state_dict(self) -> dict[str, float]:
        """The normalisation, kept in checkpoints: predict.py prepares new images without the training data."""
        return {} if self.mean is None or self.std is None else {"mean": self.mean, "std": self.std}

    def load_state_dict(self, state_dict: dict[str, float]) -> None:
        self.mean, self.std = float(state_dict["mean"]), float(state_dict["std"])
        self._on_device.clear()  # converted with the previous normalisation

    def _read_pair(self, images_name: str, labels_name: str) -> Split:
        images, labels = read_idx(self.raw_dir / images_name), read_idx(self.raw_dir / labels_name)
        if images.dim() != 3 or tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(
                f"{self.raw_dir / images_name} holds images of shape {tuple(images.shape)}, expected (N, 28, 28)"
            )
        if labels.dim() != 1 or len(labels) != len(images):
            raise ValueError(
                f"{self.raw_dir / labels_name} holds {tuple(labels.shape)} labels for {len(images)} images in {images_name}"
            )
        if int(labels.max()) >= len(self.class_names):
            raise ValueError(
                f"{self.raw_dir / labels_name} has label {int(labels.max())}; {self.name} has {len(self.class_names)} classes"
            )
        return images.reshape(len(images), -1), labels.long()


class MNISTDataModule(IDXImageDataModule):
    """Handwritten digits (LeCun et al.): 60k training and 10k test images."""

    name = "MNIST"
    official_files = {
        TRAIN_IMAGES: "6bbc9ace898e44ae57da46a324031adb",
        TRAIN_LABELS: "a25bea736e30d166cdddb491f175f624",
        TEST_IMAGES: "2646ac647ad5339dbf082846283269ea",
        TEST_LABELS: "27ae3e4e09519cfbb04c329615203637",
    }
    class_names = [str(digit) for digit in range(10)]
    default_mean, default_std = 0.1307, 0.3081


class FashionMNISTDataModule(IDXImageDataModule):
    """Zalando's clothing images (Xiao et al., 2017): MNIST's format and sizes, a harder task."""

    name = "FashionMNIST"
    official_files = {
        TRAIN_IMAGES: "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        TRAIN_LABELS: "9018921c3c673c538a1fc5bad174d6f9",
        TEST_IMAGES: "8181f5470baa50b63fa0f6fddb340f0a",
        TEST_LABELS: "15d484375f8d13e6eb1aabb0c3f46965",
    }
    class_names = [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ]
    # no published mean/std: computed from the training split (mean, std = None)

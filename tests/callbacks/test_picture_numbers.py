"""Each picture draws the numbers it is about: the data read back from the matplotlib figures a real run drew,
compared with the run's own records (metrics.csv, checkpoints, data files)."""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

import mlplab.callbacks.loss_curves
import mlplab.callbacks.picture
from mlplab.callbacks.drawing import save_png
from mlplab.callbacks.loss_curves import STAGES
from mlplab.callbacks.saliency import PAD, input_gradients, saliency_figure
from mlplab.config.compose import compose_run_config
from mlplab.data.idx import read_idx
from mlplab.data.tensor_datamodule import TensorDataModule
from mlplab.models.mlp import MLP
from mlplab.models.tasks import RegressionTask
from mlplab.run.build import build_callbacks, build_module, build_trainer
from mlplab.train import train
from tests.conftest import make_idx_dataset, tiny_overrides

EPOCHS = 3
HIDDEN = 10


class DrawnPictures(dict):
    """path -> the last picture saved there: a save_png that also keeps what it saved."""

    def save_png(self, picture, path: Path) -> Path:
        self[Path(path)] = picture
        return save_png(picture, path)


def drawing_into(pictures: DrawnPictures) -> pytest.MonkeyPatch:
    patch = pytest.MonkeyPatch()
    for module in (mlplab.callbacks.loss_curves, mlplab.callbacks.picture):
        patch.setattr(module, "save_png", pictures.save_png)
    return patch


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory) -> tuple[Path, dict[str, float], DrawnPictures]:
    """A 3-epoch MNIST-format run with every default callback and the CSV logger: (run folder, metrics, the
    pictures it drew). A low learning rate leaves mistakes in the test split."""
    root = tmp_path_factory.mktemp("numbers")
    files = make_idx_dataset(root / "data")
    overrides = [*tiny_overrides(root / "data", files), "logger=csv", f"trainer.max_epochs={EPOCHS}"]
    cfg = compose_run_config([*overrides, f"model.hidden=[{HIDDEN}]", "lr=1e-4"], root / "run")
    pictures = DrawnPictures()
    patch = drawing_into(pictures)
    try:
        metrics = train(cfg)
    finally:
        patch.undo()
    return root / "run", metrics, pictures


def colour_bar_limits(image) -> tuple[float, float]:
    """The value range the colour bar of a drawn image shows (None: no colour bar)."""
    assert image.colorbar is not None, "no colour bar"
    low, high = image.colorbar.ax.get_ylim()
    return float(low), float(high)


def tiles_of(grid: np.ndarray, count: int, shape: tuple[int, int], columns: int, pad: int = 1) -> list[np.ndarray]:
    """The first `count` tiles of a grid laid out by drawing.tile_grid."""
    h, w = shape
    return [
        grid[pad + (i // columns) * (h + pad) :][:h, pad + (i % columns) * (w + pad) :][:, :w] for i in range(count)
    ]


def logged_epoch_metrics(metrics_csv: Path) -> dict[str, dict[str, dict[int, float]]]:
    """stage -> metric -> epoch -> value, from the epoch rows of metrics.csv (train/loss_epoch stands for the
    training loss; plain train/loss is a step's)."""
    logged: dict[str, dict[str, dict[int, float]]] = {stage: defaultdict(dict) for stage in STAGES}
    with open(metrics_csv, newline="") as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                stage, _, name = key.partition("/")
                if stage in STAGES and value and key != "train/loss":
                    logged[stage][name.removesuffix("_epoch")][int(row["epoch"])] = float(value)
    return logged


def drawn_curves(figure: Figure) -> dict[str, dict[str, dict[int, float]]]:
    """stage -> metric -> epoch -> value, as the lines of the curves figure draw them."""
    drawn: dict[str, dict[str, dict[int, float]]] = {stage: {} for stage in STAGES}
    for ax in figure.axes:
        for line in ax.get_lines():
            drawn[line.get_label()][ax.get_title()] = dict(zip(line.get_xdata().tolist(), line.get_ydata().tolist()))
    return drawn


def test_the_curves_draw_each_epoch_at_its_logged_value(csv_run):
    run, _, pictures = csv_run
    logged = logged_epoch_metrics(run / "csv" / "metrics.csv")
    assert set(logged["train"]) == {"loss", "acc"} and set(logged["val"]) == {"loss", "acc"}
    assert all(sorted(epochs) == list(range(EPOCHS)) for stage in logged.values() for epochs in stage.values())
    drawn = drawn_curves(pictures[run / "curves.png"])
    for stage in STAGES:
        assert drawn[stage].keys() == logged[stage].keys(), stage
        for name, values in logged[stage].items():
            assert drawn[stage][name] == pytest.approx(values, rel=1e-6), f"{stage}/{name}"


def test_the_weight_grid_draws_the_weights_on_one_scale_with_a_colour_bar_and_a_title(csv_run):
    run, _, pictures = csv_run
    figure = pictures[run / "images" / "weights" / f"first_layer_epoch{EPOCHS - 1:03d}.png"]
    assert isinstance(figure, Figure)
    (ax,) = [ax for ax in figure.axes if ax.images and ax.images[0].colorbar is not None]
    assert ax.get_title().startswith(f"epoch {EPOCHS - 1}: first-layer weights")
    # drawn after the last epoch, when last.ckpt is saved: the same weights
    weight = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]["network.layers.1.weight"]
    assert weight.shape == (HIDDEN, 784)
    grid = np.ma.filled(ax.images[0].get_array().astype(float), np.nan)
    assert grid.shape == (3 * 29 + 1, 4 * 29 + 1)  # 10 tiles: 4 columns, 3 rows
    for unit, tile in enumerate(tiles_of(grid, HIDDEN, (28, 28), columns=4)):
        np.testing.assert_allclose(tile, weight[unit].reshape(28, 28).numpy(), rtol=1e-6)
    assert np.isnan(grid).sum() == grid.size - HIDDEN * 784  # gaps and empty slots are no weights
    peak = weight.abs().max().item()
    assert colour_bar_limits(ax.images[0]) == pytest.approx((-peak, peak), rel=1e-6)


def test_a_linear_model_draws_its_class_templates_named_with_a_title_and_colour_bar(tmp_path):
    files = make_idx_dataset(tmp_path / "data")
    overrides = [*tiny_overrides(tmp_path / "data", files), "logger=none", "trainer.max_epochs=1", "baselines=false"]
    cfg = compose_run_config([*overrides, "model.hidden=[]"], tmp_path / "run")
    pictures = DrawnPictures()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mlplab.callbacks.picture, "save_png", pictures.save_png)
        train(cfg)
    path = tmp_path / "run" / "images" / "weights" / "first_layer_epoch000.png"
    figure = pictures[path]
    (ax,) = [ax for ax in figure.axes if ax.images and ax.images[0].colorbar is not None]
    assert "class templates" in ax.get_title()
    assert [text.get_text() for text in ax.texts] == [str(c) for c in range(10)]
    weight = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    (template,) = [v for k, v in weight.items() if k.startswith("network.") and v.ndim == 2]
    grid = np.ma.filled(ax.images[0].get_array().astype(float), np.nan)
    for digit, tile in enumerate(tiles_of(grid, 10, (28, 28), columns=4)):
        np.testing.assert_allclose(tile, template[digit].reshape(28, 28).numpy(), rtol=1e-6)
    peak = template.abs().max().item()
    assert colour_bar_limits(ax.images[0]) == pytest.approx((-peak, peak), rel=1e-6)
    with Image.open(path) as png:
        width, height = png.size
    assert width >= 400 and height >= 300  # ten 28x28 tiles, each large enough to see


def test_the_confusion_matrix_draws_the_test_counts(csv_run):
    run, metrics, pictures = csv_run
    (ax, bar) = pictures[run / "images" / "test" / "confusion_matrix.png"].axes
    counts = np.asarray(ax.images[0].get_array())
    labels = read_idx(next((run.parent / "data").rglob("t10k-labels-idx1-ubyte")))
    assert counts.sum(axis=1).tolist() == torch.bincount(labels.long(), minlength=10).tolist()  # rows: true class
    assert np.trace(counts) / counts.sum() == pytest.approx(metrics["test/acc"], rel=1e-6)
    assert 0 < metrics["test/acc"] < 1  # mistakes off the diagonal to show
    assert [int(text.get_text()) for text in ax.texts] == counts.flatten().tolist()
    assert colour_bar_limits(ax.images[0]) == (counts.min(), counts.max())


def test_the_saliency_maps_draw_each_rows_gradients_with_the_rows_colour_bar(csv_run):
    run, _, pictures = csv_run
    figure = pictures[run / "images" / "test" / "saliency.png"]
    maps = [ax.images[0] for ax in figure.axes if ax.images and ax.images[0].colorbar is not None]
    assert len(maps) == 4  # callbacks.saliency.num_images
    for image in maps:
        values = np.ma.filled(image.get_array().astype(float), np.nan)
        peak = np.nanmax(np.abs(values))
        assert peak > 0 and colour_bar_limits(image) == pytest.approx((-peak, peak), rel=1e-6)
    assert figure.get_suptitle() == "d class score / d input"


def test_the_saliency_map_of_a_linear_model_draws_its_class_weights():
    network = MLP(784, 10, hidden=[])
    x = torch.randn(2, 784)
    grads = input_gradients(network, x, 10)
    images = np.zeros((2, 28, 28), dtype=np.uint8)
    figure = saliency_figure(images, grads, [str(c) for c in range(10)], ["first", "second"])
    maps = [ax.images[0] for ax in figure.axes if ax.images and ax.images[0].colorbar is not None]
    weight = network.linears[0].weight.detach()
    peak = weight.abs().max().item()
    assert len(maps) == 2  # one per image
    for image in maps:
        strip = np.ma.filled(image.get_array().astype(float), np.nan)
        for c, tile in enumerate(tiles_of(strip, 10, (28, 28), columns=10, pad=PAD)):
            np.testing.assert_allclose(tile, weight[c].reshape(28, 28).numpy(), rtol=1e-6)
        assert colour_bar_limits(image) == pytest.approx((-peak, peak), rel=1e-6)


HOUSING_FEATURES = ["MedInc", "HouseAge", "AveRooms", "AveBedrms", "Population", "AveOccup", "Latitude", "Longitude"]


class EightFeatures(TensorDataModule):
    """A regression on eight named features, the California housing ones: a tabular data set the tests make."""

    @property
    def input_size(self) -> int:
        return len(HOUSING_FEATURES)

    @property
    def task(self) -> RegressionTask:
        return RegressionTask(feature_names=HOUSING_FEATURES, target_name="value")

    def load_splits(self):
        x = torch.randn(300, 8, generator=torch.Generator().manual_seed(0))
        y = x[:, 0] - 0.5 * x[:, 6] + 0.1 * torch.randn(300, generator=torch.Generator().manual_seed(1))
        return {"train": (x[:200], y[:200]), "val": (x[200:250], y[200:250]), "test": (x[250:], y[250:])}


@pytest.fixture(scope="module")
def housing_run(tmp_path_factory):
    """A 1-epoch regression with 256 hidden units over EightFeatures: (run folder, module, data, pictures drawn)."""
    root = tmp_path_factory.mktemp("housing")
    overrides = ["logger=none", "accelerator=cpu", "trainer.enable_progress_bar=false", "callbacks.model_summary=null"]
    cfg = compose_run_config(
        [*overrides, "trainer.max_epochs=1", "model.hidden=[256]", "monitor.metric=val/mse", "monitor.mode=min"]
        + ["baselines=false"],
        root / "run",
    )
    datamodule = EightFeatures(batch_size=32)
    pictures = DrawnPictures()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mlplab.callbacks.picture, "save_png", pictures.save_png)
        trainer = build_trainer(cfg, build_callbacks(cfg), [])
        module = build_module(cfg, datamodule)
        trainer.fit(module, datamodule=datamodule)
        trainer.test(module, datamodule=datamodule, verbose=False)
    return root / "run", module, datamodule, pictures


def test_the_housing_weight_map_is_a_readable_size_and_draws_the_weights(housing_run):
    run, module, _, pictures = housing_run
    path = run / "images" / "weights" / "first_layer_epoch000.png"
    with Image.open(path) as png:
        width, height = png.size
    assert 400 <= width <= 1400 and 250 <= height <= 1000, (width, height)  # was 600 x 1950
    (ax,) = [ax for ax in pictures[path].axes if ax.images and ax.images[0].colorbar is not None]
    assert ax.get_title().startswith("epoch 0: first-layer weights, one per unit (100 of 256)")
    assert [label.get_text() for label in ax.get_yticklabels()] == HOUSING_FEATURES
    weight = module.network.linears[0].weight.detach()[:100]  # callbacks.weights.max_units
    np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), weight.T.numpy(), rtol=1e-6)
    peak = weight.abs().max().item()
    assert colour_bar_limits(ax.images[0]) == pytest.approx((-peak, peak), rel=1e-6)


def test_the_regression_pictures_draw_the_test_predictions(housing_run):
    run, module, datamodule, pictures = housing_run
    x, y = datamodule.splits["test"]
    with torch.no_grad():
        predicted = module.eval()(x).squeeze(-1)
    (ax,) = pictures[run / "images" / "test" / "pred_vs_true.png"].axes
    np.testing.assert_allclose(ax.collections[0].get_offsets(), torch.stack([y, predicted], 1).numpy(), rtol=1e-5)
    (ax,) = pictures[run / "images" / "test" / "residuals.png"].axes
    heights = [patch.get_height() for patch in ax.patches]
    expected, _ = np.histogram((predicted - y).numpy(), bins=50)  # callbacks.residuals.bins
    assert heights == expected.tolist()
    assert math.isclose(sum(heights), len(y))

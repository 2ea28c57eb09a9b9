"""The picture, curve and timing callbacks, on real short runs over tiny data the tests make."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import confusion_matrix

from mlplab.callbacks.confusion_matrix import confusion_counts
from mlplab.callbacks.drawing import new_figure, save_png
from mlplab.callbacks.loss_curves import epoch_metrics
from mlplab.callbacks.saliency import input_gradients
from mlplab.callbacks.weights import linear_layers, weight_tiles
from mlplab.config.compose import compose_run_config
from mlplab.data.tensor_datamodule import TensorDataModule
from mlplab.models.mlp import MLP
from mlplab.models.tasks import RegressionTask
from mlplab.run.build import build_callbacks, build_module, build_trainer
from mlplab.train import train
from tests.conftest import make_idx_dataset, tiny_overrides

HIDDEN = 10
TRAIN_SAMPLES = 500  # the tiny set's 600 training images less data.val_size=100


def compose_run(output_dir: Path, *overrides: str):
    return compose_run_config(overrides, output_dir)


@pytest.fixture(scope="module")
def classification_run(tmp_path_factory) -> tuple[Path, dict[str, float]]:
    """One 2-epoch MNIST-format run with every default callback and no logger: (run folder, metrics).

    A low learning rate keeps the network from learning the tiny classes, so there are misclassified images.
    """
    root = tmp_path_factory.mktemp("classification")
    files = make_idx_dataset(root / "data")
    cfg = compose_run(
        root / "run", *tiny_overrides(root / "data", files), "logger=none", f"model.hidden=[{HIDDEN}]", "lr=1e-4"
    )
    return root / "run", train(cfg)


def read_png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_the_weight_grid_is_drawn_after_every_epoch(classification_run):
    run, _ = classification_run
    assert sorted(p.name for p in (run / "images" / "weights").iterdir()) == [
        "first_layer_epoch000.png",
        "first_layer_epoch001.png",
    ]
    grid = read_png(run / "images" / "weights" / "first_layer_epoch001.png")
    assert grid.ndim == 3 and min(grid.shape[:2]) > 300 and grid[..., :3].std() > 10


def test_a_linear_model_gets_one_tile_per_class_its_template():
    network = MLP(784, 10, hidden=[])
    (layer,) = linear_layers(network)
    grid = weight_tiles(layer.weight, (28, 28), max_tiles=100)
    assert grid.shape == (3 * 29 + 1, 4 * 29 + 1)
    template = layer.weight[7].detach().reshape(28, 28).numpy()
    assert (grid[1 + 29 : 29 + 29, 1 + 3 * 29 : 29 + 3 * 29] == template).all()
    assert np.isnan(grid).sum() == grid.size - 10 * 784  # between and after the tiles


def test_the_tile_grid_stops_at_max_tiles():
    weight = torch.randn(300, 784)
    assert weight_tiles(weight, (28, 28), max_tiles=16).shape == (4 * 29 + 1, 4 * 29 + 1)


def test_a_classifier_gets_its_test_diagnostics_and_no_regression_pictures(classification_run):
    run, metrics = classification_run
    pictures = {p.name: read_png(p) for p in (run / "images" / "test").iterdir()}
    assert pictures.keys() == {"confusion_matrix.png", "misclassified.png", "saliency.png"}
    assert metrics["test/acc"] < 1  # so there is something to show in misclassified.png
    for name, image in pictures.items():
        assert image.ndim == 3 and min(image.shape[:2]) > 200, name
        assert image[..., :3].std() > 10, name  # drawn, not blank


def test_confusion_counts_agree_with_scikit_learn():
    generator = torch.Generator().manual_seed(0)
    targets, predictions = (
        torch.randint(0, 4, (500,), generator=generator),
        torch.randint(0, 4, (500,), generator=generator),
    )
    assert (
        confusion_counts(targets, predictions, 4).tolist()
        == confusion_matrix(targets, predictions, labels=range(4)).tolist()
    )


def test_saliency_of_a_linear_model_is_each_class_weight_row():
    network = MLP(784, 10, hidden=[])
    x = torch.randn(3, 784)
    with torch.inference_mode():  # as in Lightning's test loop
        grads = input_gradients(network, x, 10)
    assert grads.shape == (3, 10, 784)
    assert torch.allclose(grads, network.linears[0].weight.detach().expand(3, 10, 784))


def test_loss_curves_are_drawn_for_every_epoch_metric(classification_run):
    run, _ = classification_run
    image = read_png(run / "curves.png")
    assert image.shape[1] > image.shape[0] > 200  # two panels side by side: loss and acc
    metrics = {
        "train/loss": 9.0,
        "train/loss_epoch": 1.0,
        "train/acc": 0.5,
        "val/loss": 2.0,
        "lr": 0.1,
        "time/epoch_s": 3.0,
    }
    assert epoch_metrics(metrics, "train") == {"loss": 1.0, "acc": 0.5}
    assert epoch_metrics(metrics, "val") == {"loss": 2.0}


def test_the_epoch_timer_counts_every_training_sample(classification_run):
    _, metrics = classification_run
    assert metrics["time/epoch_s"] > 0
    assert metrics["time/samples_per_s"] * metrics["time/epoch_s"] == pytest.approx(TRAIN_SAMPLES, rel=1e-4)


class TinyTabular(TensorDataModule):
    """y = 3 a - 2 b + noise over three named features: a regression data set that is not images."""

    names = ["a", "b", "noise"]

    @property
    def input_size(self) -> int:
        return len(self.names)

    @property
    def task(self) -> RegressionTask:
        return RegressionTask(feature_names=self.names, target_name="y")

    def load_splits(self):
        x = torch.randn(300, 3, generator=torch.Generator().manual_seed(0))
        y = 3 * x[:, 0] - 2 * x[:, 1] + 0.1 * torch.randn(300, generator=torch.Generator().manual_seed(1))
        return {"train": (x[:200], y[:200]), "val": (x[200:250], y[200:250]), "test": (x[250:], y[250:])}


def test_a_tabular_regression_gets_a_named_weight_heat_map_and_regression_pictures(tmp_path):
    cfg = compose_run(
        tmp_path / "run",
        "logger=none",
        "accelerator=cpu",
        "trainer.enable_progress_bar=false",
        "callbacks.model_summary=null",
        "trainer.max_epochs=2",
        "model.hidden=[4]",
        "monitor.metric=val/mse",
        "monitor.mode=min",
        "baselines=false",
    )  # the mnist config's baselines are classifiers
    datamodule = TinyTabular(batch_size=32)
    trainer = build_trainer(cfg, build_callbacks(cfg), [])
    module = build_module(cfg, datamodule)
    trainer.fit(module, datamodule=datamodule)
    trainer.test(module, datamodule=datamodule, verbose=False)
    images = tmp_path / "run" / "images"
    assert sorted(p.name for p in (images / "test").iterdir()) == ["pred_vs_true.png", "residuals.png"]
    heat_map = read_png(images / "weights" / "first_layer_epoch001.png")
    assert heat_map.ndim == 3 and heat_map[..., :3].std() > 10
    assert (tmp_path / "run" / "curves.png").is_file()
    assert math.isfinite(float(trainer.callback_metrics["test/r2"]))


def test_lean_callbacks_train_and_checkpoint_without_drawing_anything(tmp_path):
    files = make_idx_dataset(tmp_path / "data")
    cfg = compose_run(tmp_path / "run", *tiny_overrides(tmp_path / "data", files), "logger=none", "callbacks=lean")
    metrics = train(cfg)
    run = tmp_path / "run"
    assert metrics["time/epoch_s"] > 0 and "test/acc" in metrics  # the timer and the test of the best checkpoint
    assert (run / "checkpoints" / "last.ckpt").is_file() and list((run / "checkpoints").glob("best-*.ckpt"))
    assert not (run / "images").exists() and not (run / "curves.png").exists()


def test_a_picture_that_fails_to_save_leaves_the_previous_png_and_no_temporary_file(tmp_path):
    path = tmp_path / "images" / "test" / "picture.png"
    save_png(np.full((4, 4), 200, dtype=np.uint8), path)
    before = path.read_bytes()
    figure = new_figure(2, 2)

    def killed_mid_write(file, format):
        file.write(b"\x89PNG half a picture")
        raise KeyboardInterrupt

    figure.savefig = killed_mid_write
    with pytest.raises(KeyboardInterrupt):
        save_png(figure, path)
    assert path.read_bytes() == before and read_png(path).tolist() == [[200] * 4] * 4
    assert [p.name for p in path.parent.iterdir()] == ["picture.png"]

"""Each picture draws the numbers it is about: the data read back from the matplotlib figures a real run drew,
compared with the run's own records (metrics.csv, checkpoints, data files)."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest
from matplotlib.figure import Figure

import mlplab.callbacks.loss_curves
import mlplab.callbacks.picture
from mlplab.callbacks.drawing import save_png
from mlplab.callbacks.loss_curves import STAGES
from mlplab.config.compose import compose_run_config
from mlplab.train import train
from tests.conftest import make_idx_dataset, tiny_overrides

EPOCHS = 3


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
    cfg = compose_run_config([*overrides, "model.hidden=[10]", "lr=1e-4"], root / "run")
    pictures = DrawnPictures()
    patch = drawing_into(pictures)
    try:
        metrics = train(cfg)
    finally:
        patch.undo()
    return root / "run", metrics, pictures


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

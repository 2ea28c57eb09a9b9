"""predict.py: images and housing rows from files give what the trained module gives on the data module's own
tensors; inputs it cannot read are named, and leave no file behind."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import DictConfig
from PIL import Image

from mlplab.checkpoints.find import trained_checkpoint
from mlplab.checkpoints.io import CheckpointError
from mlplab.config.compose import compose_run_config
from mlplab.config.location import PROJECT_ROOT
from mlplab.data.housing import FEATURE_NAMES, STATLIB_NAME, features_from_statlib, read_statlib
from mlplab.data.images import FashionMNISTDataModule
from mlplab.predict import InputError, predict, prediction_columns, read_image
from mlplab.run.build import build_datamodule, build_module
from mlplab.train import train
from mlplab.utils.errors import ConfigError
from tests.conftest import make_idx_dataset, tiny_overrides
from tests.helpers.statlib import housing_overrides, make_statlib_file

QUICK = ["model.hidden=[32]", "logger=none", "callbacks=lean", "baselines=false"]


def _train(folder: Path, overrides: list[str]) -> tuple[Path, DictConfig]:
    cfg = compose_run_config([*overrides, *QUICK], folder / "run")
    train(cfg)
    return Path(cfg.paths.output_dir), cfg


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory) -> tuple[Path, DictConfig]:
    """(run folder, config) of a 2-epoch run on tiny MNIST."""
    folder = tmp_path_factory.mktemp("mnist")
    data_dir = folder / "data"
    return _train(folder, tiny_overrides(data_dir, make_idx_dataset(data_dir)))


@pytest.fixture(scope="module")
def housing_run(tmp_path_factory) -> tuple[Path, DictConfig, Path]:
    """(run folder, config, StatLib file) of a 2-epoch run on a tiny housing file."""
    folder = tmp_path_factory.mktemp("housing")
    file_md5 = make_statlib_file(folder / "mirror")
    run_dir, cfg = _train(folder, housing_overrides(folder / "data", folder / "mirror", file_md5))
    return run_dir, cfg, folder / "mirror" / "california_housing" / STATLIB_NAME


def _predict(tmp_path: Path, cfg: DictConfig, *overrides: str) -> Path:
    return predict(
        compose_run_config([*overrides, f"paths.data_dir={cfg.paths.data_dir}"], tmp_path / "predict", "predict")
    )


def _module_outputs(run_dir: Path, cfg: DictConfig):
    """The data module (set up) and the outputs of the run's best checkpoint on its prepared test split."""
    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    module = build_module(cfg, datamodule)
    best = next((run_dir / "checkpoints").glob("best-*.ckpt"))
    module.load_state_dict(torch.load(best, weights_only=True)["state_dict"])
    module.eval()
    x, y = datamodule.split_on_device("test")
    with torch.no_grad():
        return datamodule, module(x), y


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _save(array: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def test_pngs_of_test_images_get_the_classes_the_module_gives_the_test_split(mnist_run, tmp_path):
    run_dir, cfg = mnist_run
    datamodule, outputs, targets = _module_outputs(run_dir, cfg)
    images = datamodule.splits["test"][0].reshape(-1, 28, 28)[:40].numpy()
    for i, image in enumerate(images):
        _save(image, tmp_path / "digits" / f"test_{i:03d}.png")
    (tmp_path / "digits" / "notes.txt").write_text("not an image: left out")

    rows = _rows(_predict(tmp_path, cfg, f"ckpt_path={run_dir}", f"inputs={tmp_path / 'digits'}"))

    expected = outputs[:40].argmax(dim=-1)
    assert (expected == targets[:40]).float().mean() > 0.8  # a model that learned: the classes are not all one
    assert [r["file"] for r in rows] == [f"test_{i:03d}.png" for i in range(40)]
    assert [int(r["class"]) for r in rows] == expected.tolist()
    assert [r["class_name"] for r in rows] == [str(c) for c in expected.tolist()]  # MNIST's names are its digits
    probabilities = torch.tensor([[float(r[f"p_{c}"]) for c in range(10)] for r in rows])
    assert torch.allclose(probabilities, outputs[:40].softmax(dim=-1), atol=1e-5)


def test_colour_transparent_jpeg_and_larger_images_get_the_class_of_their_greyscale_twin(mnist_run, tmp_path):
    run_dir, cfg = mnist_run
    datamodule, _, _ = _module_outputs(run_dir, cfg)
    folder = tmp_path / "variants"
    for i, grey in enumerate(datamodule.splits["test"][0].reshape(-1, 28, 28)[:8].numpy()):
        orange = np.stack([grey, grey, grey // 2], axis=-1)
        _save(grey, folder / f"{i}_grey.png")
        _save(orange, folder / f"{i}_colour.png")
        _save(orange, folder / f"{i}_colour.jpg")
        _save(
            np.dstack([np.full_like(grey, 255), np.full_like(grey, 255), np.full_like(grey, 255), grey]),
            folder / f"{i}_white_ink_on_transparent.png",
        )
        _save(grey.repeat(3, axis=0).repeat(3, axis=1), folder / f"{i}_84x84.png")
    assert torch.equal(read_image(folder / "0_white_ink_on_transparent.png"), read_image(folder / "0_grey.png"))

    rows = _rows(_predict(tmp_path, cfg, f"ckpt_path={run_dir}", f"inputs={folder}"))

    assert len(rows) == 8 * 5
    classes = {r["file"]: r["class"] for r in rows}
    for r in rows:
        assert r["class"] == classes[r["file"].split("_")[0] + "_grey.png"], r["file"]


def test_an_image_of_another_shape_is_padded_with_black_to_its_aspect_ratio(tmp_path):
    image = read_image(_save(np.full((30, 60), 255, dtype=np.uint8), tmp_path / "wide.png"))  # 60 wide, 30 high
    assert image.shape == (28, 28) and image.dtype == torch.uint8
    assert image[:6].max() == 0 and image[-6:].max() == 0  # black above and below
    assert image[8:20].min() > 240


def test_a_housing_csv_gets_the_modules_predictions_on_its_prepared_test_rows(housing_run, tmp_path):
    run_dir, cfg, statlib_file = housing_run
    datamodule, outputs, _ = _module_outputs(run_dir, cfg)
    checkpoint = torch.load(next((run_dir / "checkpoints").glob("best-*.ckpt")), weights_only=True)
    assert torch.equal(checkpoint["HousingDataModule"]["feature_mean"], datamodule.feature_transform.mean)

    raw, _ = features_from_statlib(read_statlib(statlib_file))
    prepared = datamodule.prepare_inputs(torch.from_numpy(raw))
    x_test = datamodule.splits["test"][0]
    test_rows = [int((prepared == row).all(dim=1).nonzero()[0]) for row in x_test]  # which raw row each test row is
    columns = ["district", *reversed(FEATURE_NAMES)]  # any order, and a column of our own
    table = tmp_path / "districts.csv"
    with table.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for i in test_rows:
            writer.writerow([f"d{i}", *(repr(float(raw[i, FEATURE_NAMES.index(c)])) for c in columns[1:])])

    rows = _rows(_predict(tmp_path, cfg, f"ckpt_path={run_dir}", f"inputs={table}"))

    assert [r["district"] for r in rows] == [f"d{i}" for i in test_rows]
    predicted = torch.tensor([float(r["predicted_MedHouseVal"]) for r in rows])
    assert torch.allclose(predicted, outputs.squeeze(-1), rtol=1e-5, atol=1e-6)


def test_a_checkpoint_without_statistics_recomputes_them_from_the_data(housing_run, tmp_path, caplog):
    run_dir, cfg, statlib_file = housing_run
    checkpoint = torch.load(next((run_dir / "checkpoints").glob("best-*.ckpt")), weights_only=True)
    del checkpoint["HousingDataModule"]  # as written before the data modules kept their statistics
    old = tmp_path / "old.ckpt"
    torch.save(checkpoint, old)
    raw, _ = features_from_statlib(read_statlib(statlib_file))
    table = tmp_path / "rows.csv"
    table.write_text(
        ",".join(FEATURE_NAMES) + "\n" + "\n".join(",".join(map(repr, row)) for row in raw[:20].tolist()) + "\n"
    )

    from_old = _rows(_predict(tmp_path / "a", cfg, f"ckpt_path={old}", f"inputs={table}"))
    from_new = _rows(_predict(tmp_path / "b", cfg, f"ckpt_path={run_dir}", f"inputs={table}"))

    assert "holds no input statistics" in caplog.text
    assert from_old == from_new


def _broken_png(folder: Path) -> None:
    _save(np.zeros((28, 28), dtype=np.uint8), folder / "a_good.png")
    whole = _save(np.arange(784, dtype=np.uint8).reshape(28, 28), folder / "broken.png").read_bytes()
    (folder / "broken.png").write_bytes(whole[: len(whole) // 2])


def _text_as_png(folder: Path) -> None:
    _save(np.zeros((28, 28), dtype=np.uint8), folder / "a_good.png")
    (folder / "broken.png").write_text("not a picture")


@pytest.mark.parametrize("make", [_broken_png, _text_as_png])
def test_an_unreadable_image_is_named_and_nothing_is_written(mnist_run, tmp_path, make):
    run_dir, cfg = mnist_run
    make(tmp_path / "images")
    with pytest.raises(InputError, match=r"broken.png is not a readable image"):
        _predict(tmp_path, cfg, f"ckpt_path={run_dir}", f"inputs={tmp_path / 'images'}")
    assert not (tmp_path / "predict").exists() or not any((tmp_path / "predict").iterdir())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "MedInc,HouseAge,AveRooms,AveBedrms,Population,AveOccup,Longitude\n1,2,3,4,5,6,7\n",
            r"rows.csv has no column Latitude: expected a header row naming the columns MedInc, .*, Longitude \(any order\)",
        ),
        (
            ",".join(FEATURE_NAMES) + "\n1,2,3,1,5,6,34,-118\n1,2,abc,1,5,6,34,-118\n",
            r"rows.csv, line 3, column AveRooms: 'abc' is not a finite number",
        ),
        (
            ",".join(FEATURE_NAMES) + "\n1,2,3,1,5,6,34,nan\n",
            r"rows.csv, line 2, column Longitude: 'nan' is not a finite number",
        ),
        (",".join(FEATURE_NAMES) + "\n1,2,3,1,5,6,34\n", r"rows.csv, line 2: 7 values for the 8 columns of its header"),
        (  # finite in float64, infinite once standardised into float32: the network would give nan
            ",".join(FEATURE_NAMES) + "\n1,2,3,1,5,6,34,-118\n\n1,2,3,1,1e300,6,34,-118\n",
            r"rows.csv, line 4, column Population: '1e300' is out of range: the checkpoint's feature transform "
            r"makes it inf",
        ),
        (  # Python's float() reads it as 1000; no CSV writer writes it
            ",".join(FEATURE_NAMES) + "\n1,2,3,1,1_000,6,34,-118\n",
            r"rows.csv, line 2, column Population: '1_000' is not a CSV number: write it without underscores",
        ),
        ("", r"rows.csv is empty"),
    ],
)
def test_a_bad_housing_csv_is_named_with_its_line_and_column_and_nothing_is_written(
    housing_run, tmp_path, content, message
):
    run_dir, cfg, _ = housing_run
    (tmp_path / "rows.csv").write_text(content)
    output = tmp_path / "out" / "predictions.csv"
    with pytest.raises(InputError, match=message):
        _predict(tmp_path, cfg, f"ckpt_path={run_dir}", f"inputs={tmp_path / 'rows.csv'}", f"output={output}")
    assert not output.parent.exists() or not any(output.parent.iterdir())


def test_missing_inputs_and_an_output_over_an_input_are_refused(housing_run, tmp_path):
    run_dir, cfg, _ = housing_run
    with pytest.raises(ConfigError, match=r"inputs='.*nowhere.csv' is invalid: no such file or folder"):
        _predict(tmp_path, cfg, f"ckpt_path={run_dir}", f"inputs={tmp_path / 'nowhere.csv'}")
    table = tmp_path / "rows.csv"
    table.write_text(",".join(FEATURE_NAMES) + "\n1,2,3,1,5,6,34,-118\n")
    with pytest.raises(ConfigError, match=r"output='.*rows.csv' is invalid: it is the input file"):
        _predict(tmp_path, cfg, f"ckpt_path={run_dir}", f"inputs={table}", f"output={table}")
    with pytest.raises(ConfigError, match=r"output='.*best.ckpt' is invalid: name the .csv file to write"):
        _predict(tmp_path, cfg, f"ckpt_path={run_dir}", f"inputs={table}", f"output={tmp_path / 'best.ckpt'}")
    assert table.read_text() == ",".join(FEATURE_NAMES) + "\n1,2,3,1,5,6,34,-118\n"


def _unwritable_outputs(tmp_path: Path) -> list[Path]:
    (tmp_path / "a_file").write_text("")
    outputs = [tmp_path / "a_file" / "predictions.csv"]  # a folder that is a file
    try:  # /sys refuses new files even to root (a chmod'ed folder does not)
        os.close(os.open("/sys/.mlplab_probe", os.O_CREAT | os.O_WRONLY))
        os.unlink("/sys/.mlplab_probe")
    except OSError:
        outputs.append(Path("/sys/predictions.csv"))
    return outputs


def test_an_output_that_cannot_be_written_is_named_as_given(housing_run, tmp_path):
    run_dir, cfg, _ = housing_run
    table = tmp_path / "rows.csv"
    table.write_text(",".join(FEATURE_NAMES) + "\n1,2,3,1,5,6,34,-118\n")
    for output in _unwritable_outputs(tmp_path):
        with pytest.raises(ConfigError) as error:
            _predict(tmp_path, cfg, f"ckpt_path={run_dir}", f"inputs={table}", f"output={output}")
        assert str(error.value).startswith(f"output={str(output)!r} is invalid: it cannot be written (")
        assert ".tmp" not in str(error.value)  # not the temporary file the CSV is first written to


def test_the_command_line_writes_the_csv_into_its_own_folder_and_says_where(mnist_run, tmp_path):
    run_dir, cfg = mnist_run
    image = _save(np.zeros((28, 28), dtype=np.uint8), tmp_path / "blank.png")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT / "src"), os.environ.get("PYTHONPATH")])),
    }
    command = [
        sys.executable,
        "predict.py",
        f"ckpt_path={run_dir}",
        f"inputs={image}",
        f"paths.data_dir={cfg.paths.data_dir}",
        f"paths.output_root={tmp_path / 'outputs'}",
    ]
    result = subprocess.run(
        command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    written = next((tmp_path / "outputs" / "predict" / "runs").glob("*/predictions.csv"))
    assert f"Predictions of {run_dir / 'checkpoints'}" in result.stdout + result.stderr
    assert str(written.resolve()) in result.stdout + result.stderr
    assert [r["file"] for r in _rows(written)] == ["blank.png"]


def test_a_run_folder_means_the_best_checkpoint_its_last_checkpoint_records(mnist_run, tmp_path):
    run_dir, _ = mnist_run
    best = next((run_dir / "checkpoints").glob("best-*.ckpt"))
    assert trained_checkpoint(run_dir) == trained_checkpoint(run_dir / "checkpoints") == best
    moved = tmp_path / "moved"
    shutil.copytree(run_dir, moved)  # the recorded path still names the old folder: its file is used when there
    assert trained_checkpoint(moved) == best
    best.rename(best.with_suffix(".away"))
    try:  # not there any more: the file of that name in this folder
        assert trained_checkpoint(moved) == moved / "checkpoints" / best.name
    finally:
        best.with_suffix(".away").rename(best)
    resumed = tmp_path / "resumed" / "checkpoints"  # a resumed run that found no better: its best is in the old folder
    resumed.mkdir(parents=True)
    shutil.copy(run_dir / "checkpoints" / "last.ckpt", resumed)
    assert trained_checkpoint(resumed.parent) == best
    (moved / "checkpoints" / "last.ckpt").unlink()
    assert trained_checkpoint(moved) == moved / "checkpoints" / best.name  # no last.ckpt: the only best-*.ckpt
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"'.*empty' is a folder without checkpoints"):
        trained_checkpoint(tmp_path / "empty")


def test_last_means_the_single_run_saved_most_recently_under_the_output_root(mnist_run, tmp_path):
    run_dir, _ = mnist_run
    for age, name in ((100, "older"), (0, "newer")):
        copy = tmp_path / "outputs" / name / "runs" / "2026-01-01_00-00-00"
        shutil.copytree(run_dir, copy)
        last = copy / "checkpoints" / "last.ckpt"
        checkpoint = torch.load(last, weights_only=True)
        best = next((copy / "checkpoints").glob("best-*.ckpt"))
        for state in checkpoint["callbacks"].values():
            state["best_model_path"] = str(best)
        torch.save(checkpoint, last)
        os.utime(last, (time.time() - age, time.time() - age))
    assert trained_checkpoint("last", tmp_path / "outputs") == best  # the newer one's
    with pytest.raises(
        CheckpointError, match=r"ckpt_path=last: no run under .*nowhere/<task>/runs has a checkpoints/last.ckpt"
    ):
        trained_checkpoint("last", tmp_path / "nowhere")


def test_fashion_mnist_rows_name_the_class_and_a_probability_column_per_class(tmp_path):
    task = FashionMNISTDataModule(tmp_path).task
    outputs = torch.zeros(2, 10)
    outputs[0, 9], outputs[1, 0] = 5.0, 5.0
    names, values = prediction_columns(task, outputs)
    assert names == ["class", "class_name", *(f"p_{name}" for name in FashionMNISTDataModule.class_names)]
    assert [v[:2] for v in values] == [["9", "Ankle boot"], ["0", "T-shirt/top"]]
    assert sum(float(p) for p in values[0][2:]) == pytest.approx(1, abs=1e-5)

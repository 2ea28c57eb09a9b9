"""predict.py on a model trained on the real MNIST: the official test set as PNG files, and the shipped examples."""

import csv
from pathlib import Path

import pytest
from PIL import Image

from mlplab.config.compose import compose_run_config
from mlplab.config.location import PROJECT_ROOT
from mlplab.data.images import MNISTDataModule
from mlplab.predict import predict
from mlplab.train import train

pytestmark = pytest.mark.slow


def _classes(path: Path) -> dict[str, int]:
    with path.open(newline="") as f:
        return {row["file"]: int(row["class"]) for row in csv.DictReader(f)}


def test_the_real_test_set_as_png_files_gets_the_test_accuracy_and_the_examples_their_digits(compose_config, tmp_path):
    cfg = compose_config(
        "trainer.max_epochs=1",
        "accelerator=cpu",
        "trainer.enable_progress_bar=false",
        "logger=none",
        "callbacks=lean",
        "baselines=false",
    )
    metrics = train(cfg)
    run_dir = Path(cfg.paths.output_dir)

    datamodule = MNISTDataModule(cfg.paths.data_dir)  # the official test set, as the run read it
    datamodule.setup()
    images, labels = datamodule.splits["test"]
    (tmp_path / "test_set").mkdir()
    for i, image in enumerate(images.reshape(-1, 28, 28).numpy()):
        Image.fromarray(image).save(tmp_path / "test_set" / f"{i:05d}.png")

    def run(inputs: Path, name: str) -> dict[str, int]:
        overrides = [f"ckpt_path={run_dir}", f"inputs={inputs}", f"paths.data_dir={cfg.paths.data_dir}"]
        return _classes(predict(compose_run_config(overrides, tmp_path / name, "predict")))

    classes = run(tmp_path / "test_set", "test_set")
    accuracy = sum(classes[f"{i:05d}.png"] == label for i, label in enumerate(labels.tolist())) / len(labels)
    assert accuracy == pytest.approx(metrics["test/acc"], abs=1e-6)  # the same images, the same predictions

    examples = run(PROJECT_ROOT / "docs" / "examples" / "digits", "examples")  # named test<index>_<digit>.png
    assert len(examples) == 8
    assert all(predicted == int(name.removesuffix(".png").split("_")[1]) for name, predicted in examples.items())

"""Predict with a trained model: `python predict.py ckpt_path=<checkpoint or run folder> inputs=<file or folder>`.

The network, its data set and the statistics its inputs were prepared with all come from the checkpoint.
Image models (MNIST, FashionMNIST) read PNG/JPEG files and write one row per file: the file, the predicted
class, its name and one probability per class. Table models (California housing) read a CSV with the data
set's feature columns and write its rows back with the prediction added. Every input is read and checked
before anything is written, and the CSV is written atomically: an input that fails leaves no file behind.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from PIL import Image, ImageOps

from mlplab.checkpoints.io import CheckpointError
from mlplab.config.location import CONFIG_DIR
from mlplab.config.resolvers import register_resolvers
from mlplab.config.validation import validate_config
from mlplab.data.images import IDXImageDataModule
from mlplab.models.module import SupervisedModule
from mlplab.models.tasks import ClassificationTask, Task
from mlplab.run.process import prepare_process, short_user_errors
from mlplab.run.trained import TrainedRun, load_trained_run
from mlplab.utils.errors import ConfigError
from mlplab.utils.files import write_text

log = logging.getLogger(__name__)
register_resolvers()

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class InputError(ValueError):
    """An input predict.py cannot use: not an image, a corrupt file, a CSV without the needed columns or with bad values."""


def predict(cfg: DictConfig) -> Path:
    """Write the predictions of the model in `cfg.ckpt_path` for `cfg.inputs` to `cfg.output`; return that path."""
    validate_config(cfg)
    inputs, output = Path(cfg.inputs).expanduser(), Path(cfg.output).expanduser()
    if not inputs.exists():
        raise ConfigError(f"inputs={str(cfg.inputs)!r} is invalid: no such file or folder")
    if output.suffix.lower() != ".csv" or output.is_dir():  # never over an image, a checkpoint, a folder
        raise ConfigError(
            f"output={str(cfg.output)!r} is invalid: name the .csv file to write, e.g. output=predictions.csv"
        )
    if output.resolve() == inputs.resolve():
        raise ConfigError(f"output={str(cfg.output)!r} is invalid: it is the input file; name another file")
    run = load_trained_run(cfg.ckpt_path, cfg.paths)
    restore_input_statistics(run)
    header, rows, x = read_inputs(run, inputs, invert=cfg.get("invert", False))
    names, values = prediction_columns(run.datamodule.task, network_outputs(run.module, x))
    echoed = [i for i, name in enumerate(header) if name not in names]  # an earlier prediction is replaced, not doubled
    try:
        write_csv(
            output, [header[i] for i in echoed] + names, [[row[i] for i in echoed] + v for row, v in zip(rows, values)]
        )
    except OSError as e:  # it names the temporary file beside the output, or a parent folder: name the output
        raise ConfigError(
            f"output={str(cfg.output)!r} is invalid: it cannot be written ({type(e).__name__}: {e.strerror or e}); "
            "name a .csv file in a writable folder"
        ) from None
    log.info("Predictions of %s for %d input(s) from %s: %s", run.ckpt_path, len(rows), inputs, output.resolve())
    return output


def read_inputs(run: TrainedRun, inputs: Path, invert: bool = False) -> tuple[list[str], list[list[str]], torch.Tensor]:
    """(the CSV's leading columns, their values for each input, the inputs prepared as the network takes them)."""
    datamodule = run.datamodule
    if isinstance(datamodule, IDXImageDataModule):
        files = image_files(inputs)
        images = torch.stack([read_image(f, datamodule.image_shape, invert=invert) for f in files])
        warn_if_dark_on_light(files, images)
        return ["file"], [[f.name] for f in files], datamodule.prepare_inputs(images)
    feature_names = getattr(datamodule.task, "feature_names", None)
    if feature_names:
        return read_table(inputs, feature_names, prepare=datamodule.prepare_inputs)
    raise CheckpointError(
        f"{run.ckpt_path}: predict.py reads images or tables of named features, and "
        f"{type(datamodule).__name__} has neither"
    )


def restore_input_statistics(run: TrainedRun) -> None:
    """Give the data module the statistics its training data was prepared with: the checkpoint's, else the data's."""
    datamodule = run.datamodule
    state = run.checkpoint.get(type(datamodule).__qualname__)  # where Lightning keeps a data module's state_dict()
    if state:
        datamodule.load_state_dict(state)
        return
    log.warning(
        "%s holds no input statistics (it was written before mlplab kept them in checkpoints): recomputing them "
        "from the training split of %s, as its training did",
        run.ckpt_path,
        type(datamodule).__name__,
    )
    datamodule.prepare_data()
    datamodule.setup()


def image_files(inputs: Path) -> list[Path]:
    """`inputs` itself, or the PNG and JPEG files in the folder `inputs` (not its subfolders), sorted by name."""
    if not inputs.is_dir():
        return [inputs]
    # hidden files left out: macOS's `._name.png` companions are not images
    files = sorted(
        p for p in inputs.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith(".")
    )
    if not files:
        raise InputError(f"{inputs} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files


def read_image(path: Path, shape: tuple[int, int] = (28, 28), invert: bool = False) -> torch.Tensor:
    """An image file as uint8 greyscale of `shape`: colour to grey, transparency over black, padded to its
    aspect ratio with black, then resized; an image of `shape` already is taken as it is."""
    try:
        with Image.open(path) as image:
            image.load()  # decodes it all: a truncated or corrupt file fails here
            grey = _greyscale(image)
    except Exception as e:  # noqa: BLE001 (PIL raises OSError, SyntaxError, ValueError, DecompressionBombError, ...)
        raise InputError(f"{path} is not a readable image: {type(e).__name__}: {e}") from None
    if invert:
        grey = ImageOps.invert(grey)
    size = (shape[1], shape[0])  # PIL's (width, height)
    if grey.size != size:
        grey = ImageOps.pad(grey, size, method=Image.Resampling.LANCZOS, color=0)
    return torch.from_numpy(np.array(grey, dtype=np.uint8))


def _greyscale(image: Image.Image) -> Image.Image:
    if image.mode.startswith("I"):  # 16-bit greyscale: PIL's convert("L") would clip it, not scale it
        return Image.fromarray((np.asarray(image, dtype=np.float64) / 257).round().clip(0, 255).astype(np.uint8))
    if "A" in image.getbands() or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
    return image.convert("L")


def warn_if_dark_on_light(files: Sequence[Path], images: torch.Tensor) -> None:
    """Warn about images with a light border: the training images are light on a black background."""
    border = torch.cat([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], dim=1).float().mean(dim=1)
    light = [f.name for f, level in zip(files, border.tolist()) if level > 127]
    if light:
        log.warning(
            "%d image(s) have a light background (%s%s): the model was trained on light items on black; "
            "invert=true inverts them first",
            len(light),
            ", ".join(light[:3]),
            ", ..." if len(light) > 3 else "",
        )


def read_table(
    path: Path, feature_names: Sequence[str], prepare: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> tuple[list[str], list[list[str]], torch.Tensor]:
    """A CSV with a header row: (header, rows as text, the feature columns (N, features) in `feature_names`'
    order: as float64, or as `prepare` makes them). Columns may come in any order; the others are kept as text
    for the output. A value that `prepare` makes infinite or NaN (1e300, beyond float32) is refused."""
    if path.is_dir():
        raise InputError(
            f"{path} is a folder: this model reads one CSV file of feature rows ({', '.join(feature_names)})"
        )
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:  # -sig: Excel's byte order mark
            reader = csv.reader(f)
            lines = [(reader.line_num, row) for row in reader if row]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"{path} is not a readable CSV file: {type(e).__name__}: {e}") from None
    needs = f"a header row naming the columns {', '.join(feature_names)} (any order), then one row per input"
    if not lines:
        raise InputError(f"{path} is empty: expected {needs}")
    header = [name.strip() for name in lines[0][1]]
    missing = [name for name in feature_names if name not in header]
    if missing:
        raise InputError(
            f"{path} has no column {', '.join(missing)}: expected {needs}; its header is {', '.join(header)}"
        )
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise InputError(f"{path} names the column {', '.join(duplicates)} more than once")
    if len(lines) == 1:
        raise InputError(f"{path} has a header but no rows")
    columns = [header.index(name) for name in feature_names]
    features = np.empty((len(lines) - 1, len(columns)))
    rows = []
    for i, (line, row) in enumerate(lines[1:]):
        if len(row) != len(header):
            raise InputError(f"{path}, line {line}: {len(row)} values for the {len(header)} columns of its header")
        for j, column in enumerate(columns):
            features[i, j] = _finite_number(row[column], f"{path}, line {line}, column {header[column]}")
        rows.append(row)
    x = torch.from_numpy(features)
    if prepare is None:
        return header, rows, x
    prepared = prepare(x)
    bad = (~torch.isfinite(prepared)).nonzero()
    if len(bad):
        i, j = bad[0].tolist()
        line, row = lines[1 + i]
        raise InputError(
            f"{path}, line {line}, column {header[columns[j]]}: {row[columns[j]]!r} is out of range: the "
            f"checkpoint's feature transform makes it {prepared[i, j].item()} (beyond float32's range)"
        )
    return header, rows, prepared


def _finite_number(text: str, where: str) -> float:
    """The number in a CSV cell. Python's float() also reads `1_000` (a digit separator no CSV writer puts in a
    number; a typo as likely as not), so underscores are refused, as are NaN and the infinities."""
    if "_" in text:
        raise InputError(f"{where}: {text!r} is not a CSV number: write it without underscores (1000, not 1_000)")
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value):
        raise InputError(f"{where}: {text!r} is not a finite number")
    return value


@torch.inference_mode()
def network_outputs(module: SupervisedModule, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    module.eval()  # dropout off, batch norm with its running statistics
    return torch.cat([module(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def prediction_columns(task: Task, outputs: torch.Tensor) -> tuple[list[str], list[list[str]]]:
    """The prediction's column names and one row of values per output."""
    if isinstance(task, ClassificationTask):
        names = ["class", "class_name", *(f"p_{name}" for name in task.class_names)]
        classes, probabilities = task.predict(outputs).tolist(), outputs.softmax(dim=-1).tolist()
        return names, [
            [str(c), task.class_names[c], *(f"{p:.6g}" for p in ps)] for c, ps in zip(classes, probabilities)
        ]
    return [f"predicted_{task.target_name}"], [[f"{value:.6g}"] for value in task.predict(outputs).tolist()]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_text(path, text.getvalue())


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="predict")
def main(cfg: DictConfig) -> None:
    prepare_process()
    with short_user_errors():
        predict(cfg)


if __name__ == "__main__":
    main()

"""`prepare_inputs` maps raw inputs to exactly the tensors the data modules train on, with statistics a
checkpoint keeps (`state_dict`), so a rebuilt data module prepares new inputs without the training data."""

import io

import pytest
import torch

from mlplab.data.housing import STATLIB_NAME, HousingDataModule, features_from_statlib, read_statlib
from mlplab.data.idx import read_idx
from mlplab.data.images import TEST_IMAGES, FashionMNISTDataModule, MNISTDataModule
from mlplab.data.sources import Mirror
from tests.conftest import make_idx_dataset
from tests.helpers.statlib import make_statlib_file


def _saved_and_loaded(state: dict) -> dict:
    """`state` through torch.save and a weights-only load, as it travels in a checkpoint."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("datamodule_class", [MNISTDataModule, FashionMNISTDataModule])
def test_raw_images_are_prepared_exactly_as_the_test_split(tmp_path, datamodule_class):
    files = make_idx_dataset(tmp_path, name=datamodule_class.name)
    datamodule = datamodule_class(tmp_path, files=files, val_size=100)
    datamodule.setup()
    raw = read_idx(datamodule.raw_dir / TEST_IMAGES)  # (N, 28, 28) uint8, as in the file
    prepared_test, _ = datamodule.split_on_device("test")
    assert torch.equal(datamodule.prepare_inputs(raw), prepared_test)

    rebuilt = datamodule_class(tmp_path / "elsewhere", files=files, val_size=100)  # no data there
    rebuilt.load_state_dict(_saved_and_loaded(datamodule.state_dict()))
    assert torch.equal(rebuilt.prepare_inputs(raw), prepared_test)


def test_fashion_mnist_keeps_the_normalisation_it_computed(tmp_path):
    files = make_idx_dataset(tmp_path, name="FashionMNIST")
    datamodule = FashionMNISTDataModule(tmp_path, files=files, val_size=100)
    assert datamodule.state_dict() == {}  # nothing computed yet: Lightning then stores nothing
    datamodule.setup()
    state = datamodule.state_dict()
    pixels = datamodule.splits["train"][0].float() / 255
    assert state["mean"] == pytest.approx(pixels.mean().item()) and state["std"] == pytest.approx(pixels.std().item())
    with pytest.raises(RuntimeError, match="no normalisation yet"):
        FashionMNISTDataModule(tmp_path, files=files).prepare_inputs(torch.zeros(1, 28, 28, dtype=torch.uint8))


def test_images_that_are_not_uint8_are_refused(tmp_path):
    datamodule = MNISTDataModule(tmp_path)
    with pytest.raises(TypeError, match="must be uint8 images"):
        datamodule.prepare_inputs(torch.zeros(1, 28, 28))


def test_raw_housing_rows_are_standardised_exactly_as_the_splits(tmp_path):
    file_md5 = make_statlib_file(tmp_path / "mirror", n=300)
    datamodule = HousingDataModule(
        tmp_path / "data", sources=[Mirror(tmp_path / "mirror", "california_housing")], md5=file_md5
    )
    datamodule.prepare_data()
    datamodule.setup()
    raw, _ = features_from_statlib(read_statlib(tmp_path / "mirror" / "california_housing" / STATLIB_NAME))
    prepared = datamodule.prepare_inputs(torch.from_numpy(raw))
    split_rows = torch.cat([datamodule.splits[split][0] for split in ("train", "val", "test")])
    assert len(split_rows) == len(raw)
    # each prepared split row is, exactly, the prepared form of one raw row
    assert (split_rows[:, None, :] == prepared[None]).all(dim=-1).any(dim=1).all()
    train_rows = datamodule.splits["train"][0]
    assert train_rows.mean(dim=0).abs().max() < 1e-5 and (train_rows.std(dim=0) - 1).abs().max() < 1e-5

    rebuilt = HousingDataModule(tmp_path / "elsewhere")  # no data, no sources
    rebuilt.load_state_dict(_saved_and_loaded(datamodule.state_dict()))
    assert torch.equal(rebuilt.prepare_inputs(torch.from_numpy(raw)), prepared)
    with pytest.raises(RuntimeError, match="no feature statistics yet"):
        HousingDataModule(tmp_path / "elsewhere").prepare_inputs(torch.from_numpy(raw))

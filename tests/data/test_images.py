import pytest
import torch

from mlplab.data.idx import IDXFormatError
from mlplab.data.images import MNISTDataModule
from mlplab.data.sources import DataUnavailableError, Mirror
from tests.conftest import make_idx_dataset, md5


def _datamodule(data_dir, files, **kwargs):
    return MNISTDataModule(data_dir=data_dir, files=files, val_size=100, batch_size=32, **kwargs)


def test_splits_are_seeded_disjoint_and_normalised(tiny_mnist):
    data_dir, files = tiny_mnist
    dm = _datamodule(data_dir, files)
    dm.prepare_data()
    dm.setup()
    assert [len(dm.splits[s][0]) for s in ("train", "val", "test")] == [500, 100, 200]
    again = _datamodule(data_dir, files)
    again.setup()
    assert torch.equal(dm.splits["val"][1], again.splits["val"][1])
    other = _datamodule(data_dir, files, split_seed=1)
    other.setup()
    assert not torch.equal(dm.splits["val"][1], other.splits["val"][1])
    x, y = dm.split_on_device("train")
    assert x.dtype == torch.float32 and x.shape == (500, 784) and y.dtype == torch.int64
    assert dm.splits["train"][0].dtype == torch.uint8  # stored compactly, converted once on the device
    assert x.min().item() == pytest.approx((0 - 0.1307) / 0.3081, abs=1e-4)


def test_batches_are_tensor_slices_of_the_configured_size(tiny_mnist):
    data_dir, files = tiny_mnist
    dm = _datamodule(data_dir, files, eval_batch_size=64)
    dm.setup()
    xb, yb = next(iter(dm.train_dataloader()))
    assert xb.shape == (32, 784) and yb.shape == (32,)
    assert [len(b) for _, b in dm.val_dataloader()] == [50, 50]  # 100 images, batches of at most 64
    assert sum(len(b) for _, b in dm.test_dataloader()) == 200


def test_missing_files_are_fetched_from_a_mirror(tmp_path):
    files = make_idx_dataset(tmp_path / "mirror")
    dm = MNISTDataModule(
        data_dir=tmp_path / "data", files=files, sources=[Mirror(tmp_path / "mirror", "MNIST/raw")], val_size=100
    )
    dm.prepare_data()
    assert {n: md5(tmp_path / "data" / "MNIST" / "raw" / n) for n in files} == files


def test_a_corrupted_file_is_rejected_when_no_source_can_replace_it(tiny_mnist):
    data_dir, files = tiny_mnist
    images = data_dir / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-10])
    with pytest.raises(DataUnavailableError, match="train-images-idx3-ubyte  md5"):
        _datamodule(data_dir, files).prepare_data()


def test_a_truncated_file_with_a_matching_checksum_still_fails_to_load(tiny_mnist):
    data_dir, files = tiny_mnist
    images = data_dir / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-10])
    with pytest.raises(IDXFormatError, match="truncated or corrupt"):
        _datamodule(data_dir, dict(files, **{images.name: md5(images)})).setup()


def test_labels_that_do_not_match_the_images_are_rejected(tmp_path):
    files = make_idx_dataset(tmp_path / "data", n_train=600)
    other = make_idx_dataset(tmp_path / "other", n_train=300, seed=1)
    labels = "train-labels-idx1-ubyte"
    (tmp_path / "data" / "MNIST" / "raw" / labels).write_bytes(
        (tmp_path / "other" / "MNIST" / "raw" / labels).read_bytes()
    )
    with pytest.raises(ValueError, match=r"holds \(300,\) labels for 600 images"):
        _datamodule(tmp_path / "data", dict(files, **{labels: other[labels]})).setup()

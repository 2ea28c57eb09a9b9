import pytest
import torch

from mlplab.data.images import FashionMNISTDataModule
from mlplab.data.sources import DataUnavailableError
from mlplab.train import train
from tests.conftest import make_idx_dataset, tiny_overrides


def test_fashion_mnist_reads_its_files_and_normalises_with_training_statistics(tmp_path):
    files = make_idx_dataset(tmp_path / "data", name="FashionMNIST")
    dm = FashionMNISTDataModule(tmp_path / "data", files=files, val_size=100)
    dm.setup()
    assert [len(dm.splits[s][0]) for s in ("train", "val", "test")] == [500, 100, 200]
    pixels = dm.splits["train"][0].float() / 255
    assert (dm.mean, dm.std) == pytest.approx((pixels.mean().item(), pixels.std().item()))
    x, _ = dm.split_on_device("train")
    assert x.mean().item() == pytest.approx(0, abs=1e-4) and x.std().item() == pytest.approx(1, abs=1e-4)
    assert dm.task.class_names[0] == "T-shirt/top" and dm.task.class_names[-1] == "Ankle boot"
    assert dm.task.num_classes == 10


def test_files_that_are_not_the_official_ones_are_rejected(tmp_path):
    make_idx_dataset(tmp_path / "data", name="FashionMNIST")
    with pytest.raises(DataUnavailableError) as error:
        FashionMNISTDataModule(tmp_path / "data", sources=[]).prepare_data()
    message = str(error.value)
    assert "Could not get the FashionMNIST files" in message
    assert "train-images-idx3-ubyte  md5 f4a8712d7a061bf5bd6d2ca38dc4d50a" in message
    assert "t10k-labels-idx1-ubyte  md5 15d484375f8d13e6eb1aabb0c3f46965" in message


def test_a_short_run_on_tiny_fashion_mnist_files_learns_the_classes(compose_config, tmp_path):
    files = make_idx_dataset(tmp_path / "data", name="FashionMNIST")
    cfg = compose_config(*tiny_overrides(tmp_path / "data", files), "data=fashion_mnist", "baselines=false")
    metrics = train(cfg)
    assert metrics["test/acc"] > 0.5
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["hyper_parameters"]["data"]["_target_"] == "mlplab.data.images.FashionMNISTDataModule"

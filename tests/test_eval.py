"""eval.py answers a checkpoint it cannot use with a clear error, not a trace from deep inside torch."""

from pathlib import Path

import pytest
import torch

from mlplab.checkpoints.io import CheckpointError
from mlplab.eval import evaluate
from mlplab.train import train
from tests.conftest import tiny_overrides


@pytest.fixture
def trained(compose_config, tiny_mnist) -> Path:
    """The best checkpoint of a short run on tiny MNIST."""
    cfg = compose_config(*tiny_overrides(*tiny_mnist), "trainer.max_epochs=1", "model.hidden=[32]", "logger=none")
    train(cfg)
    return next((Path(cfg.paths.output_dir) / "checkpoints").glob("best-*.ckpt"))


def _evaluate(compose_config, data_dir, *overrides):
    return evaluate(compose_config(*overrides, f"paths.data_dir={data_dir}", "accelerator=cpu", config_name="eval"))


def test_a_missing_file_says_so(compose_config, tmp_path):
    with pytest.raises(CheckpointError, match=r"ckpt_path='.*nowhere.ckpt': no such file"):
        _evaluate(compose_config, tmp_path, f"ckpt_path={tmp_path / 'nowhere.ckpt'}")


def test_a_file_that_is_not_a_checkpoint_says_so(compose_config, tmp_path):
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match=r"notes.ckpt' is not a readable PyTorch checkpoint"):
        _evaluate(compose_config, tmp_path, f"ckpt_path={text}")
    other = tmp_path / "other.ckpt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match=r"other.ckpt' is not an mlplab training checkpoint"):
        _evaluate(compose_config, tmp_path, f"ckpt_path={other}")


def test_a_checkpoint_with_code_in_it_is_refused(compose_config, tmp_path):
    pickled = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"data": {}}, "hook": Path("x")}, pickled)  # needs code to load
    with pytest.raises(CheckpointError, match="is not a readable PyTorch checkpoint: Weights only load failed"):
        _evaluate(compose_config, tmp_path, f"ckpt_path={pickled}")


def test_another_data_set_that_does_not_fit_the_network_names_the_difference(compose_config, tiny_mnist, trained):
    data_dir, _ = tiny_mnist
    with pytest.raises(CheckpointError) as error:
        _evaluate(
            compose_config,
            data_dir,
            f"ckpt_path={trained}",
            "data=mnist",
            "data._target_=tests.helpers.callbacks.Letters",
        )
    message = str(error.value)
    assert "holds a different network: network.layers.3.weight is (10, 32) there but (26, 32) here" in message
    assert "data mlplab.data.images.MNISTDataModule there, tests.helpers.callbacks.Letters here" in message


def test_another_data_set_that_fits_is_evaluated(compose_config, tiny_mnist, trained, tmp_path):
    from tests.conftest import make_idx_dataset

    other = tmp_path / "other"
    files = make_idx_dataset(other, seed=3)
    files_override = "{" + ",".join(f"{k}:{v}" for k, v in files.items()) + "}"
    metrics = _evaluate(
        compose_config,
        other,
        f"ckpt_path={trained}",
        "data=mnist",
        "data.sources=[]",
        "data.val_size=100",
        f"+data.files={files_override}",
    )
    assert metrics["test/acc"] > 0.5  # the same kind of tiny images, drawn afresh


def test_weights_that_do_not_fit_their_own_config_name_the_layer(compose_config, tiny_mnist, trained, tmp_path):
    checkpoint = torch.load(trained, weights_only=True)
    checkpoint["hyper_parameters"]["model"]["hidden"] = [64]
    edited = tmp_path / "edited.ckpt"
    torch.save(checkpoint, edited)
    with pytest.raises(
        CheckpointError,
        match=r"holds a different network: network.layers.1.weight is \(32, 784\) there "
        r"but \(64, 784\) here",
    ):
        _evaluate(compose_config, tiny_mnist[0], f"ckpt_path={edited}")


def test_a_run_folder_is_evaluated_with_its_best_checkpoint(compose_config, tiny_mnist, trained, caplog):
    run_folder = trained.parents[1]
    with caplog.at_level("INFO", logger="mlplab.eval"):
        from_folder = _evaluate(compose_config, tiny_mnist[0], f"ckpt_path={run_folder}")
    assert f"Test metrics of {trained}" in caplog.text
    assert from_folder == _evaluate(compose_config, tiny_mnist[0], f"ckpt_path={trained}")

"""No secret from the environment ends up in a run's configs, logs, checkpoints or reports."""

import sys

import pytest

from mlplab.config.location import CONFIG_DIR
from mlplab.train import main
from tests.conftest import tiny_overrides

SECRETS = {
    "WANDB_API_KEY": "0123456789abcdef0123456789abcdef01234567",  # the shape of a W&B key
    "HF_TOKEN": "hf_secretTokenThatMustNeverBeWritten",
    "MLPLAB_TEST_PASSWORD": "correct-horse-battery-staple",
}
LOGGERS = sorted(p.stem for p in (CONFIG_DIR / "logger").glob("*.yaml"))  # every logger the project ships


@pytest.mark.parametrize("logger", LOGGERS)
def test_no_secret_from_the_environment_is_written_to_the_run_folder(tiny_mnist, tmp_path, monkeypatch, logger):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    run = tmp_path / "run"
    monkeypatch.chdir(tmp_path)  # anything a library writes to the working folder is checked too
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "train.py",
            *tiny_overrides(*tiny_mnist),
            "trainer.max_epochs=1",
            "model.hidden=[32]",
            f"logger={logger}",
            f"hydra.run.dir={run}",
        ],
    )
    main()
    written = [p for p in tmp_path.rglob("*") if p.is_file() and "data" not in p.relative_to(tmp_path).parts[:1]]
    assert any(p.suffix == ".ckpt" for p in written) and any(p.name == "config.yaml" for p in written)
    leaks = [(str(p), name) for p in written for name, value in SECRETS.items() if value.encode() in p.read_bytes()]
    assert not leaks

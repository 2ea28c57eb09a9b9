"""`python train.py` is the good quick run: its default config trains what experiment=mnist_quick trains."""

from __future__ import annotations

from omegaconf import OmegaConf

# what makes a run's result (task_name only names its outputs folder)
TRAINING_KEYS = ("data", "model", "optimizer", "scheduler", "lr", "trainer.max_epochs", "seed")


def _plain(cfg, key: str):
    value = OmegaConf.select(cfg, key)
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def test_the_default_run_trains_what_mnist_quick_trains(compose_config):
    default = compose_config()
    quick = compose_config("experiment=mnist_quick")
    for key in TRAINING_KEYS:
        assert _plain(default, key) == _plain(quick, key), key
    # the settings that gave 98.3% rather than 97.3%, named so that a change to both configs still shows here
    assert default.scheduler.scheduler._target_ == "torch.optim.lr_scheduler.CosineAnnealingLR"
    assert default.data.batch_size == 128

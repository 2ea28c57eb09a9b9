"""Run names, sweep groups and config choices that conf/logger/wandb.yaml gets from Hydra's record of the run."""

from mlplab.config.names import MAX_NAME_LENGTH
from tests.conftest import tiny_overrides


def test_a_run_is_named_by_its_overrides_and_has_no_group(compose_config):
    wandb = compose_config("optimizer=sgd", "lr=0.01").logger.wandb
    assert wandb.name == "optimizer=sgd lr=0.01"
    assert wandb.group is None
    assert compose_config().logger.wandb.name == "defaults"


def test_a_long_name_is_cut(compose_config, tiny_mnist):
    name = compose_config(*tiny_overrides(*tiny_mnist)).logger.wandb.name
    assert len(name) == MAX_NAME_LENGTH and name.startswith("paths.data_dir=") and name.endswith("...")


def test_the_choices_are_the_config_groups_options(compose_config):
    choices = compose_config("optimizer=sgd", "model=linear").logger.wandb.config.choices
    assert choices["optimizer"] == "sgd" and choices["model"] == "linear" and choices["logger"] == "wandb"
    assert not any(group.startswith("hydra/") for group in choices)

"""hydra.sweeper.params in Hydra's grammar become the Optuna distributions hydra-optuna-sweeper made of them."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from mlplab.sweeps.optuna.settings import directions_of, make_pruner, make_sampler
from mlplab.sweeps.optuna.space import grid_of, params_overrides, search_space
from mlplab.utils.errors import ConfigError


def test_each_form_of_params_becomes_its_distribution_and_fixed_values_stay_fixed() -> None:
    space = search_space(
        params_overrides(
            {
                "lr": "tag(log, interval(1e-4, 1e-1))",
                "model.dropout": "interval(0.0, 0.5)",
                "data.batch_size": "int(interval(16, 64))",
                "model.depth": "tag(log, int(interval(1, 8)))",
                "optimizer": "choice(adam, adamw, sgd)",
                "seed": "1,2,3",
                "trainer.max_epochs": "range(2, 10, 3)",
                "model.hidden": "choice([64],[128,64])",
                "search.width": [128, 256],
                "tags": "[a,b]",
                "torch_threads": "1",
            }
        )
    )
    d = space.distributions
    assert d["lr"] == FloatDistribution(1e-4, 1e-1, log=True)
    assert d["model.dropout"] == FloatDistribution(0.0, 0.5)
    assert d["data.batch_size"] == IntDistribution(16, 64)  # int(...): Hydra reads interval ends as floats
    assert d["model.depth"] == IntDistribution(1, 8, log=True)
    assert d["optimizer"] == CategoricalDistribution(["adam", "adamw", "sgd"])
    assert d["seed"] == CategoricalDistribution([1, 2, 3])
    assert d["trainer.max_epochs"] == IntDistribution(2, 8, step=3)  # Hydra's range: 2, 5, 8 (stop excluded)
    assert d["model.hidden"] == CategoricalDistribution(["[64]", "[128,64]"])  # override text: lists can be chosen
    assert d["search.width"] == CategoricalDistribution([128, 256])
    assert space.fixed == {"tags": "[a,b]", "torch_threads": "1"}


def test_the_command_line_wins_over_params_for_the_same_key() -> None:
    space = search_space([*params_overrides({"lr": "interval(1e-4, 1e-1)", "seed": "1,2"}), "lr=0.01", "seed=7"])
    assert space.distributions == {} and space.fixed == {"lr": "0.01", "seed": "7"}


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("lr=interval(0.1, 0.01)", "low < high"),
        ("lr=tag(log, interval(0.0, 1.0))", "low > 0"),
        ("x=range(5, 5)", "holds no value"),
    ],
)
def test_an_empty_or_reversed_space_is_refused_naming_it(override: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        search_space([override])


def test_grid_sampler_gets_every_value_of_the_discrete_params() -> None:
    space = search_space(["optimizer=choice(adam,sgd)", "trainer.max_epochs=range(1,4)"])
    assert grid_of(space.distributions) == {"optimizer": ["adam", "sgd"], "trainer.max_epochs": [1, 2, 3]}
    sampler = make_sampler({"_target_": "optuna.samplers.GridSampler", "_partial_": True}, space.distributions)
    assert isinstance(sampler, optuna.samplers.GridSampler)
    with pytest.raises(ConfigError, match="GridSampler needs discrete values"):
        grid_of(search_space(["lr=interval(0.1, 1.0)"]).distributions)


def test_samplers_and_pruners_are_made_from_their_target_and_none_means_none() -> None:
    sampler = make_sampler({"_target_": "optuna.samplers.RandomSampler", "seed": 3}, {})
    assert isinstance(sampler, optuna.samplers.RandomSampler)
    assert isinstance(make_pruner(None), optuna.pruners.NopPruner)
    pruner = make_pruner({"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 2})
    assert isinstance(pruner, optuna.pruners.MedianPruner)
    with pytest.raises(ConfigError, match="give its _target_"):
        make_pruner({"n_startup_trials": 2})


def test_directions_take_hydra_optuna_sweepers_forms() -> None:
    assert directions_of("maximize") == ["maximize"]
    assert directions_of(["maximize", "minimize"]) == ["maximize", "minimize"]
    assert directions_of("minimize", ["minimize", "maximize"]) == ["minimize", "maximize"]
    with pytest.raises(ConfigError, match="minimize or maximize"):
        directions_of("max")


def test_the_shipped_architecture_search_chooses_whole_layer_lists_that_compose() -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from mlplab.config.location import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", ["hparams_search=mnist_optuna_arch"], return_hydra_config=True)
        space = search_space(params_overrides(cfg.hydra.sweeper.params))
        hidden = space.distributions["model.hidden"]
        assert isinstance(hidden, CategoricalDistribution) and "[512,256,128]" in hidden.choices
        chosen = compose("train", ["hparams_search=mnist_optuna_arch", "model.hidden=[512,256,128]"])
    GlobalHydra.instance().clear()
    assert list(chosen.model.hidden) == [512, 256, 128]
    assert cfg.hydra.sweeper.pruner._target_ == "optuna.pruners.MedianPruner"

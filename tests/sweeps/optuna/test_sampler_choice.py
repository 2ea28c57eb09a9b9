"""A sampler picked by name on the command line (`hydra/sweeper/sampler=random`) that a search config's own
`sampler:` outranks is refused, with the overrides that do pick it (which then compose and run that sampler)."""

from __future__ import annotations

import optuna
import pytest
from hydra import compose, initialize_config_dir

from mlplab.config.location import CONFIG_DIR
from mlplab.sweeps.optuna.settings import check_sampler_choice, make_sampler
from mlplab.utils.errors import ConfigError
from tests.helpers.runs import run_train_process


def _compose(*overrides: str):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=["hparams_search=mnist_optuna", *overrides], return_hydra_config=True)


def test_an_outranked_sampler_choice_is_refused_with_the_overrides_that_pick_it_and_those_work():
    with pytest.raises(ConfigError, match="outranked by the search config's own sampler") as refused:
        check_sampler_choice(_compose("hydra/sweeper/sampler=random"))
    suggested = str(refused.value).split("Pick optuna.samplers.RandomSampler with: ")[1].split(" (or")[0].split()
    assert suggested == [
        "hydra.sweeper.sampler._target_=optuna.samplers.RandomSampler",
        "~hydra.sweeper.sampler.n_startup_trials",  # TPE's argument, which RandomSampler does not take
    ]
    picked = _compose(*suggested)
    check_sampler_choice(picked)
    sampler = make_sampler(picked.hydra.sweeper.sampler, {})
    assert type(sampler) is optuna.samplers.RandomSampler  # with the search's seed


def test_a_sampler_choice_the_search_runs_anyway_is_accepted():
    check_sampler_choice(_compose("hydra/sweeper/sampler=tpe"))
    check_sampler_choice(_compose())


def test_train_py_refuses_it_in_one_line_before_any_trial_runs(tmp_path):
    result = run_train_process(
        "-m",
        "hparams_search=mnist_optuna",
        "hydra/sweeper/sampler=random",
        f"hydra.sweep.dir={tmp_path}",
        expect_code=None,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("ConfigError: hydra/sweeper/sampler=random is outranked")
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob("*/run_record.json"))  # no trial ran

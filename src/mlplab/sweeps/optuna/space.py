"""The search space of `hydra.sweeper.params`, in Hydra's override grammar, as Optuna distributions.

The mapping hydra-optuna-sweeper made (so that configs written for it keep their meaning), on Optuna's current
distributions:

- `choice(a, b, c)` and `a,b,c`: categorical; a choice of lists (`choice([64],[128,64])`) is a choice of their
  override text, so `model.hidden` can be searched;
- a YAML list in `params` (`search.width: [128, 256]`): a choice of its items;
- `range(start, stop, step)`: the values Hydra's basic sweeper would run (stop excluded), an int or float
  distribution with that step (`shuffle(range(...))`: categorical);
- `interval(low, high)`: uniform (Hydra reads its ends as floats: `int(interval(16, 64))` for ints); `tag(log, interval(...))`: log-uniform;
- anything else (`key=value`): a fixed value every trial gets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep, Transformer
from omegaconf import ListConfig
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from mlplab.utils.errors import ConfigError


@dataclass
class SearchSpace:
    distributions: dict[str, BaseDistribution] = field(default_factory=dict)
    fixed: dict[str, str] = field(default_factory=dict)  # key -> the value text every trial gets


def params_overrides(params: Mapping[str, Any] | None) -> list[str]:
    """`hydra.sweeper.params` as override lines (a YAML list becomes a choice of its items)."""
    lines = []
    for key, value in (params or {}).items():
        if isinstance(value, (list, tuple, ListConfig)):
            items = [Override._get_value_element_as_str(item) for item in value]
            if not items:
                raise ConfigError(f"hydra.sweeper.params.{key} is an empty list: nothing to choose from")
            lines.append(f"{key}=choice({','.join(items)})")
        else:
            lines.append(f"{key}={value}")
    return lines


def _choice_value(value: Any, override: Override) -> Any:
    if not isinstance(value, (str, int, float, bool, type(None))):
        raise ConfigError(f"{override.input_line}: a choice holds str, int, float, bool or null, got {value!r}")
    return value


def _range_distribution(override: Override, sweep: RangeSweep) -> BaseDistribution:
    if sweep.shuffle:
        return CategoricalDistribution(
            [_choice_value(v, override) for v in override.sweep_iterator(Transformer.encode)]
        )
    start, stop, step = sweep.start, sweep.stop, sweep.step
    count = math.ceil((stop - start) / step)
    if step <= 0 or count < 1:
        raise ConfigError(f"{override.input_line} holds no value (Hydra's range excludes its stop)")
    last = start + (count - 1) * step
    if all(isinstance(v, int) for v in (start, stop, step)):
        return IntDistribution(int(start), int(last), step=int(step))
    return FloatDistribution(float(start), float(last), step=float(step))


def _interval_distribution(override: Override, sweep: IntervalSweep) -> BaseDistribution:
    low, high = sweep.start, sweep.end
    log = "log" in sweep.tags
    if low >= high or (log and low <= 0):
        raise ConfigError(
            f"{override.input_line} is invalid: an interval needs low < high" + (" and low > 0 (log)" if log else "")
        )
    if isinstance(low, int) and isinstance(high, int):
        return IntDistribution(low, high, log=log)
    return FloatDistribution(float(low), float(high), log=log)


def distribution_of(override: Override) -> BaseDistribution | None:
    """The Optuna distribution of one parsed override; None for a fixed value."""
    if not override.is_sweep_override():
        return None
    value = override.value()
    if isinstance(value, ChoiceSweep) or override.is_choice_sweep():
        return CategoricalDistribution(
            [_choice_value(v, override) for v in override.sweep_iterator(Transformer.encode)]
        )
    if isinstance(value, RangeSweep):
        return _range_distribution(override, value)
    if isinstance(value, IntervalSweep):
        return _interval_distribution(override, value)
    raise ConfigError(f"{override.input_line}: this kind of sweep is not an Optuna search space")


def search_space(lines: Iterable[str]) -> SearchSpace:
    """The search space of override lines (`params` first, then the command line's: a later line of a key wins)."""
    space = SearchSpace()
    for override in OverridesParser.create().parse_overrides(list(lines)):
        key = override.get_key_element()
        distribution = distribution_of(override)
        space.distributions.pop(key, None)
        space.fixed.pop(key, None)
        if distribution is None:
            space.fixed[key] = override.get_value_element_as_str()
        else:
            space.distributions[key] = distribution
    return space


def grid_of(distributions: Mapping[str, BaseDistribution]) -> dict[str, list[Any]]:
    """GridSampler's search space: every value of each distribution (discrete ones only)."""
    grid = {}
    for name, distribution in distributions.items():
        if isinstance(distribution, CategoricalDistribution):
            grid[name] = list(distribution.choices)
        elif (
            isinstance(distribution, (IntDistribution, FloatDistribution))
            and distribution.step
            and not distribution.log
        ):
            count = round((distribution.high - distribution.low) / distribution.step) + 1
            grid[name] = [distribution.low + i * distribution.step for i in range(count)]
        else:
            raise ConfigError(
                f"hydra.sweeper.params.{name}: GridSampler needs discrete values (choice or range), not {distribution}"
            )
    return grid

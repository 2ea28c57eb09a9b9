"""What to call a run and its sweep, read from Hydra's record of the run (conf/logger/wandb.yaml uses these)."""

from __future__ import annotations

from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from mlplab.utils.hydra_runtime import hydra_config, in_sweep

MAX_NAME_LENGTH = 128  # dashboards cut longer names anyway


def swept_keys(hydra: DictConfig) -> set[str]:
    """The keys a sweep varies: its search space in `hydra.sweeper.params`, and the sweep overrides of the
    command line as recorded in the sweep folder's multirun.yaml (written by Hydra's basic sweeper)."""
    keys = set(hydra.sweeper.get("params") or {})
    recorded = Path(hydra.sweep.dir) / "multirun.yaml"
    if recorded.is_file():
        overrides = OmegaConf.load(recorded).hydra.overrides.task
        keys |= {
            o.key_or_group for o in OverridesParser.create().parse_overrides(list(overrides)) if o.is_sweep_override()
        }
    return keys


def run_name() -> str | None:
    """The overrides that make this run what it is, e.g. `optimizer=sgd lr=0.01`; in a sweep, only the swept ones.

    "defaults" for a run without overrides; None outside a Hydra run.
    """
    hydra = hydra_config()
    if hydra is None:
        return None
    overrides = list(hydra.overrides.task)
    swept = swept_keys(hydra) if in_sweep() else set()
    if swept:
        parsed = OverridesParser.create().parse_overrides(overrides)
        overrides = [o.input_line for o in parsed if o.key_or_group in swept]
    name = " ".join(overrides) or "defaults"
    return name if len(name) <= MAX_NAME_LENGTH else name[: MAX_NAME_LENGTH - 3] + "..."


def sweep_group() -> str | None:
    """The sweep folder's name (its start time) for every job of a sweep; None for a single run."""
    hydra = hydra_config()
    return Path(hydra.sweep.dir).name if hydra is not None and in_sweep() else None


def config_choices() -> dict[str, str | None]:
    """The option picked in each config group, e.g. {"optimizer": "adam", "model": "mlp"} (Hydra's own groups left out)."""
    hydra = hydra_config()
    if hydra is None:
        return {}
    return {group: choice for group, choice in hydra.runtime.choices.items() if not group.startswith("hydra/")}

"""Walking the shipped configs: every group option, and setting a key anywhere in a composed config."""

from __future__ import annotations

from typing import Any

from mlplab.config.location import CONFIG_DIR

# keys whose value is free-form by design: any wrong value is a right one
FREE_FORM = (
    "logger.wandb.config.",  # extra W&B run config: any mapping
    "logger.wandb.settings.",  # wandb.Settings: W&B checks its own keys and types when the run starts
)


def group_options(config_name: str) -> list[list[str]]:
    """The config as shipped, then once with each other option of each config group (conf/<group>/<option>.yaml)."""
    runs = [[]]
    for group in sorted(p for p in CONFIG_DIR.iterdir() if p.is_dir() and p.name != "hydra"):
        runs += [[f"{group.name}={option.stem}"] for option in sorted(group.glob("*.yaml"))]
    if config_name == "eval":  # its `data` options read the checkpoint's ${seed}: the train walk checks them
        runs = [["ckpt_path=run.ckpt", *r] for r in runs if not r or r[0].split("=")[0] in ("accelerator", "paths")]
    if config_name == "predict":
        runs = [["ckpt_path=run.ckpt", "inputs=digits", *r] for r in runs if not r or r[0].startswith("paths=")]
    return runs


def set_key(container: dict, key: str, value: Any) -> None:
    parts = key.replace("[", ".").replace("]", "").split(".")
    node = container
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[int(parts[-1]) if isinstance(node, list) else parts[-1]] = value

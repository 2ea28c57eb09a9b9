"""Weights & Biases logging that works anywhere: online with credentials, offline without, never a prompt or a hang."""

from __future__ import annotations

import logging
import netrc
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from lightning.pytorch.utilities import rank_zero_only

log = logging.getLogger(__name__)

# wandb reads a netrc entry for its configured server, and for api.wandb.ai behind its default (Forge) address
_DEFAULT_HOSTS = ("api.wandb.ai", "api.forge.coreweave.com")


def has_credentials() -> bool:
    """Whether wandb would find credentials: WANDB_API_KEY, an identity token, or a netrc entry for the server."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    base_url = os.environ.get("WANDB_BASE_URL")
    hosts = {urlsplit(base_url).netloc} if base_url else set(_DEFAULT_HOSTS)
    netrc_file = Path(os.environ.get("NETRC") or Path.home() / ".netrc").expanduser()
    try:
        entries = netrc.netrc(netrc_file)
    except (OSError, netrc.NetrcParseError):
        return False
    return any((entry := entries.authenticators(host)) and entry[2] for host in hosts)


def resolve_mode(configured: str | None, sync_dir: str | Path | None = None) -> str:
    """The W&B mode of a run (the jobs' and the sweep summary's alike): `configured` (logger.wandb.mode) when set,
    else `choose_mode`."""
    return configured or choose_mode(sync_dir)


def choose_mode(sync_dir: str | Path | None = None) -> str:
    """WANDB_MODE if set; otherwise online when credentials exist, else offline (saying how to upload later)."""
    if mode := os.environ.get("WANDB_MODE"):
        return mode
    if has_credentials():
        return "online"
    log.info(
        "No W&B credentials (WANDB_API_KEY or `wandb login`): logging offline; upload later with `wandb sync %s`",
        Path(sync_dir or ".") / "wandb" / "offline-run-*",
    )
    return "offline"


class WandbLogger(LightningWandbLogger):
    """Lightning's WandbLogger, plus: `mode=None` picks the mode (`choose_mode`), and an online start that fails
    (no key, no server within WANDB_INIT_TIMEOUT) logs offline instead of failing the run.

    Every other keyword goes to Lightning's WandbLogger and from there to `wandb.init`.
    """

    def __init__(self, mode: str | None = None, **kwargs: Any) -> None:
        super().__init__(mode=mode, **kwargs)
        # Relies on Lightning's WandbLogger keeping wandb.init's keywords in `self._wandb_init` and putting
        # `anonymous=None` there when not asked for; wandb warns about that setting even when it is None.
        # tests/loggers/test_wandb.py fails the day Lightning changes either, so this can go then.
        if "anonymous" in self._wandb_init and self._wandb_init["anonymous"] is None:
            self._wandb_init.pop("anonymous")

    @property
    def experiment(self) -> Any:
        if self._experiment is None and rank_zero_only.rank == 0:
            self._wandb_init["mode"] = resolve_mode(self._wandb_init.get("mode"), self.save_dir)
        try:
            return super().experiment
        except Exception as error:
            import wandb

            if not isinstance(error, wandb.errors.Error) or self._wandb_init.get("mode") != "online":
                raise
            log.warning(
                "W&B could not start an online run (%s); logging offline instead, upload later with `wandb sync %s`",
                str(error).splitlines()[0],
                Path(self.save_dir or ".") / "wandb" / "offline-run-*",
            )
            self._wandb_init["mode"] = "offline"
            return super().experiment


def finish_run(failed: bool = False) -> None:
    """Finish the process's W&B run, if any: Lightning's WandbLogger never does, so the next run would reuse it."""
    wandb = sys.modules.get("wandb")  # never imported: no run to finish, and no import cost
    if wandb is not None and wandb.run is not None:
        wandb.finish(exit_code=1 if failed else 0)

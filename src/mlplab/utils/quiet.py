"""Silence third-party messages that say nothing to the user: never the user's own warnings."""

from __future__ import annotations

import logging
import warnings

# Deprecation warnings these packages raise from their own code (Lightning calling torch's deprecated LeafSpec,
# ...): only their maintainers can act on them. A warning is attributed to the module that caused it (its
# stacklevel), so one about the user's own call is attributed to the user's module and still shows.
THIRD_PARTY = r"(lightning|lightning_fabric|lightning_utilities|pytorch_lightning|torchmetrics|wandb)(\.|$)"
DEPRECATIONS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)
ADVERTS = ("💡 Tip:",)  # Lightning's advertising for its cloud logger, on every run without one


class _DropAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(ADVERTS)


def silence_third_party_noise() -> None:
    """Install the filters (process-wide; again is harmless)."""
    for category in DEPRECATIONS:
        warnings.filterwarnings("ignore", category=category, module=THIRD_PARTY)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropAdverts) for f in logger.filters):
            logger.addFilter(_DropAdverts())

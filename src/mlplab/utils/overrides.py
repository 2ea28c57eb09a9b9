"""Writing Hydra command-line overrides that other processes (DDP ranks, sweep jobs) read back."""

from __future__ import annotations

import re


def quoted(value: str) -> str:
    """`value` single-quoted for Hydra's override grammar, so that any path (spaces, commas, `=`, quotes,
    backslashes) is read back as itself."""
    # Hydra's quoted strings treat a backslash as an escape only before a quote or the closing quote: the
    # backslashes there are doubled and the quote escaped; every other backslash stays as it is.
    escaped = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", value)
    escaped = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, escaped)
    return f"'{escaped}'"


def hydra_value(value: str) -> str:
    """`value` as an override value that Hydra reads back as itself: as it is when plain, else quoted."""
    # ASCII only: Hydra's grammar reads an unquoted é as an error, though Python's \w matches it
    return value if re.fullmatch(r"[\w./+@:-]+", value, flags=re.ASCII) else quoted(value)


def quoted_override(key: str, value: str) -> str:
    """`key='value'`, read back by Hydra as `value` itself (mlplab.utils.overrides.quoted)."""
    return f"{key}={quoted(value)}"

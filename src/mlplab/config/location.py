"""Where mlplab's configs (conf/) and its project folder (data/, outputs/) are."""

from __future__ import annotations

import os
from pathlib import Path

from mlplab.utils.errors import ConfigError

CONFIG_DIR_VARIABLE = "MLPLAB_CONFIG_DIR"
MAIN_CONFIG = "train.yaml"  # what makes a folder mlplab's conf/


def find_config_dir() -> Path:
    """mlplab's conf/ folder: $MLPLAB_CONFIG_DIR, else the source tree this package was installed from
    (an editable install or a checkout on PYTHONPATH), else ./conf; a ConfigError naming all three otherwise.
    """
    if os.environ.get(CONFIG_DIR_VARIABLE):
        folder = Path(os.environ[CONFIG_DIR_VARIABLE]).expanduser().resolve()
        if not (folder / MAIN_CONFIG).is_file():
            raise ConfigError(
                f"{CONFIG_DIR_VARIABLE}={str(folder)!r} is invalid: it has no {MAIN_CONFIG}; "
                "point it at mlplab's conf/ folder"
            )
        return folder
    # src/mlplab/config/location.py -> the project folder holding src/ and conf/
    candidates = [Path(__file__).resolve().parents[3] / "conf", Path.cwd() / "conf"]
    for folder in candidates:
        if (folder / MAIN_CONFIG).is_file():
            return folder
    raise ConfigError(
        "Cannot find mlplab's configs: no conf/"
        + MAIN_CONFIG
        + " in "
        + " or ".join(str(c.parent) for c in candidates)
        + f". Run from the project folder, or set {CONFIG_DIR_VARIABLE}=<the project's conf folder>."
    )


CONFIG_DIR = find_config_dir()
PROJECT_ROOT = CONFIG_DIR.parent  # `${mlplab_root:}`: data/ and outputs/ go here by default

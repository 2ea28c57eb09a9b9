"""conf/ is found however mlplab is installed: $MLPLAB_CONFIG_DIR, the source tree, or ./conf; else a clear refusal."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from mlplab.config.location import CONFIG_DIR, PROJECT_ROOT

PRINT_CONFIG_DIR = "from mlplab.config.location import CONFIG_DIR, PROJECT_ROOT; print(CONFIG_DIR); print(PROJECT_ROOT)"


def locate(pythonpath: Path, cwd: Path, config_dir: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLPLAB_CONFIG_DIR"} | {"PYTHONPATH": str(pythonpath)}
    if config_dir is not None:
        env["MLPLAB_CONFIG_DIR"] = config_dir
    return subprocess.run([sys.executable, "-c", PRINT_CONFIG_DIR], cwd=cwd, env=env, capture_output=True, text=True)


def installed_copy(tmp_path: Path) -> Path:
    """mlplab copied out of the source tree, as a wheel would install it."""
    site = tmp_path / "site-packages"
    shutil.copytree(PROJECT_ROOT / "src" / "mlplab", site / "mlplab", ignore=shutil.ignore_patterns("__pycache__"))
    return site


def test_the_source_tree_finds_its_own_conf():
    assert CONFIG_DIR == PROJECT_ROOT / "conf" and (CONFIG_DIR / "train.yaml").is_file()


def test_an_installed_copy_finds_conf_in_the_working_folder_or_refuses_clearly(tmp_path):
    site = installed_copy(tmp_path)
    found = locate(site, cwd=PROJECT_ROOT)
    assert found.returncode == 0 and found.stdout.split() == [str(CONFIG_DIR), str(PROJECT_ROOT)]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    refused = locate(site, cwd=elsewhere)
    assert refused.returncode != 0
    last_line = refused.stderr.strip().splitlines()[-1]
    assert last_line.startswith("mlplab.utils.errors.ConfigError: Cannot find mlplab's configs: no conf/train.yaml")
    assert "MLPLAB_CONFIG_DIR=<the project's conf folder>" in last_line and str(elsewhere) in last_line


def test_mlplab_config_dir_names_the_folder(tmp_path):
    conf = tmp_path / "my-project" / "conf"
    shutil.copytree(CONFIG_DIR, conf)
    found = locate(installed_copy(tmp_path), cwd=tmp_path, config_dir=str(conf))
    assert found.returncode == 0 and found.stdout.split() == [str(conf), str(conf.parent)]
    wrong = locate(PROJECT_ROOT / "src", cwd=tmp_path, config_dir=str(tmp_path))
    assert wrong.returncode != 0
    assert f"MLPLAB_CONFIG_DIR='{tmp_path}' is invalid: it has no train.yaml" in wrong.stderr

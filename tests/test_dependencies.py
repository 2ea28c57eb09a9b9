"""pyproject.toml's pins keep out the Lightning releases known to be unsafe, and admit the installed one."""

from __future__ import annotations

import sys
from importlib.metadata import version

import pytest
from packaging.requirements import Requirement

from mlplab.config.location import PROJECT_ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

# 2.6.2, 2.6.3: credential-stealing malware (GHSA-w37p-236h-pfx3); <= 2.6.5: code run from a checkpoint's
# hyperparameters (GHSA-qqmf-gpg7-g8gw)
UNSAFE = ("2.6.0", "2.6.1", "2.6.2", "2.6.3", "2.6.4", "2.6.5")


def _requirements() -> dict[str, Requirement]:
    with (PROJECT_ROOT / "pyproject.toml").open("rb") as f:
        dependencies = tomllib.load(f)["project"]["dependencies"]
    return {r.name: r for r in map(Requirement, dependencies)}


@pytest.mark.parametrize("package", ["lightning", "pytorch-lightning"])
def test_lightning_pins_refuse_the_unsafe_releases_and_admit_the_installed_one(package):
    requirement = _requirements()[package]
    assert [v for v in UNSAFE if requirement.specifier.contains(v)] == []
    assert requirement.specifier.contains("2.6.6")
    assert requirement.specifier.contains(version(package))

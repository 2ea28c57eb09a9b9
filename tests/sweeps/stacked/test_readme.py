"""README "Stacked sweeps" names every setting mlplab.sweeps.stacked.support classifies, so the lists match the code."""

from __future__ import annotations

from mlplab.config.location import PROJECT_ROOT
from mlplab.sweeps.stacked import support


def _section() -> str:
    text = (PROJECT_ROOT / "README.md").read_text()
    start = text.index("### Stacked sweeps: many jobs as one batched network")
    return text[start : text.index("\n### ", start + 1)]


def test_the_readme_names_every_setting_the_stack_honours_and_every_one_that_runs_alone():
    section = _section()
    stacks = section[section.index("**What stacks**") : section.index("**What runs alone**")]
    alone = section[section.index("**What runs alone**") : section.index("**One member's trouble")]
    for key in support.PER_MEMBER:
        assert f"`{key}`" in stacks, key
    for key in support.TRAINER_HONOURED:
        assert f"`{key}`" in stacks, key
    for key in support.TRAINER_AT_DEFAULT:
        assert f"`{key}`" in alone, key
    for key in (*support.CHECKPOINT_AT_DEFAULT, *support.EARLY_STOPPING_AT_DEFAULT):
        assert f"`{key}`" in alone, key
    for key in support.CHECKPOINT_HONOURED:
        assert f"`{key}`" in stacks, key

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from mlplab.utils.overrides import hydra_value, quoted_override


@pytest.mark.parametrize(
    "value", ["/plain/path", "/with space/a,b=c", "/it's/here", r"C:\runs\x", "/q\\'mix", "/end\\", "/x\\\\y"]
)
def test_a_quoted_override_reads_back_as_the_value_itself(value):
    (override,) = OverridesParser.create().parse_overrides([quoted_override("hydra.run.dir", value)])
    assert override.key_or_group == "hydra.run.dir" and override.value() == value


@pytest.mark.parametrize("value", ["/plain/path", "/with space/a,b=c", "/it's/here", r"C:\runs\x", "/end\\", "run_1"])
def test_a_hydra_value_reads_back_as_itself_and_stays_bare_when_plain(value):
    (override,) = OverridesParser.create().parse_overrides([f"ckpt_path={hydra_value(value)}"])
    assert override.value() == value
    assert (hydra_value(value) == value) == (value in ("/plain/path", "run_1"))

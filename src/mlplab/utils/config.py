"""Old home of the config helpers, kept importable while branches written against it are merged.

New code imports from mlplab.config.{location,compose,validation,devices} and mlplab.utils.errors.
"""

from mlplab.config.compose import compose_run_config
from mlplab.config.devices import check_devices
from mlplab.config.location import CONFIG_DIR, PROJECT_ROOT
from mlplab.config.resolvers import register_resolvers
from mlplab.config.validation import validate_config
from mlplab.utils.errors import ConfigError

register_resolvers()  # what importing this module did

__all__ = ["CONFIG_DIR", "PROJECT_ROOT", "ConfigError", "check_devices", "compose_run_config", "validate_config"]

"""Exceptions that mean something to the user, the run's record and the sweep report (no heavy imports here)."""


class DivergedError(RuntimeError):
    """Training produced a NaN or infinite loss; the message names the step and the likely cause."""


class ConfigError(ValueError):
    """A config value is invalid; the message names the key, the value and what is valid."""

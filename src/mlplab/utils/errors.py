"""Exceptions that mean something to the run's record and the sweep report."""


class DivergedError(RuntimeError):
    """Training produced a NaN or infinite loss; the message names the step and the likely cause."""

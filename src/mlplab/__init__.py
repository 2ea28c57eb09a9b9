"""mlplab: a Lightning + Hydra experiment framework for fully connected networks."""

__version__ = "0.1.0"

"""DDP for Hydra jobs: the strategy (strategy.py), the launcher it uses for the extra processes (launcher.py),
and what a DDP run changes in this process and puts back at its end (processes.py)."""

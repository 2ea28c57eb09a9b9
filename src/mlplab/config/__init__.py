"""Finding, composing and checking mlplab's Hydra configs (conf/)."""

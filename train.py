"""Train an MLP: `python train.py [overrides]`, sweeps with `-m`. See conf/train.yaml."""

from mlplab.train import cli

if __name__ == "__main__":
    cli()

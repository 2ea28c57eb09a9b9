"""Evaluate a checkpoint on the test set: `python eval.py ckpt_path=...`. See conf/eval.yaml."""

from mlplab.eval import main

if __name__ == "__main__":
    main()

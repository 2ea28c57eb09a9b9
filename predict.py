"""Predict with a trained model: `python predict.py ckpt_path=... inputs=...`. See conf/predict.yaml."""

from mlplab.predict import main

if __name__ == "__main__":
    main()

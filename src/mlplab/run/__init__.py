"""One run's lifecycle: build it from the config, fit, test the best checkpoint, record how it ended, stop cleanly.

Used by train.py and eval.py, and by every member of a stacked sweep alike."""

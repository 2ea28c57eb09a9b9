"""The CSV logger continues the metrics.csv of the run a checkpoint came from (real runs: tests/checkpoints/test_resume.py)."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from mlplab.loggers.csv import CSVLogger, resumed_step

EARLIER = "epoch,model/params,step,train/loss\r\n,10,0,\r\n0,,0,0.5\r\n0,,1,0.25\r\n0,,2,0.125\r\n1,,3,0.0625\r\n"


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return [{k: v for k, v in row.items() if v} for row in csv.DictReader(file)]


def test_a_job_resumed_in_its_own_folder_keeps_its_rows_before_the_checkpoint_and_logs_on_from_it(tmp_path):
    metrics = tmp_path / "csv" / "metrics.csv"
    metrics.parent.mkdir()
    metrics.write_text(EARLIER)  # steps 0-3 logged; the checkpoint is at step 2 (a killed job's last epoch end)
    logger = CSVLogger(tmp_path, name="csv", version="")
    logger.continue_from(tmp_path, step=2)

    logger.log_metrics({"model/params": 10.0}, step=0)  # what a resumed run logs again as it starts
    assert _rows(metrics) == [  # on disk before anything new is: a run stopped again still has them
        {"model/params": "10", "step": "0"},
        {"epoch": "0", "step": "0", "train/loss": "0.5"},
        {"epoch": "0", "step": "1", "train/loss": "0.25"},
    ]
    logger.log_metrics({"epoch": 0, "train/loss": 0.1, "val/loss": 0.2}, step=2)
    logger.finalize("success")
    assert _rows(metrics)[3:] == [{"epoch": "0", "step": "2", "train/loss": "0.1", "val/loss": "0.2"}]
    assert len(_rows(metrics)) == 4


def test_a_resume_without_an_earlier_metrics_file_says_so_and_logs_everything(tmp_path, caplog):
    logger = CSVLogger(tmp_path / "new", name="csv", version="")
    logger.continue_from(tmp_path / "old", step=5)  # the old run logged no CSV
    with caplog.at_level(logging.WARNING, logger="mlplab.loggers.csv"):
        logger.log_metrics({"model/params": 10.0}, step=0)
    logger.log_metrics({"train/loss": 0.5}, step=5)
    logger.finalize("success")
    assert f"No {tmp_path / 'old' / 'csv' / 'metrics.csv'} to continue" in caplog.text
    assert _rows(tmp_path / "new" / "csv" / "metrics.csv") == [
        {"model/params": "10.0", "step": "0"},
        {"step": "5", "train/loss": "0.5"},
    ]


def test_the_resumed_step_is_the_optimizer_steps_lightning_restores_not_a_stale_global_step():
    # a stacked member stopped 3 batches into its second epoch: global_step is still its first epoch's end
    optimizer_steps = {"optimizer": {"step": {"total": {"ready": 19, "completed": 19}}}}
    checkpoint = {
        "global_step": 16,
        "loops": {"fit_loop": {"epoch_loop.automatic_optimization.optim_progress": optimizer_steps}},
    }
    assert resumed_step(checkpoint) == 19
    assert resumed_step({"global_step": 16}) == 16  # no loops saved: the checkpoint's own count

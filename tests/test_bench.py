"""The benchmark keeps working: it runs every path on tiny IDX files and writes a complete report.

No timing assertions: only that the report holds the figures, for the same data on every path.
"""

import json

import pytest

from mlplab.bench import PATHS, main


def _tiny_args(data_dir, files, tmp_path):
    files_override = "{" + ",".join(f"{k}:{v}" for k, v in files.items()) + "}"
    return [
        "--data-dir", str(data_dir), "--val-size", "100", "--json", str(tmp_path / "bench.json"),
        "--override", f"+data.files={files_override}", "--override", "data.sources=[]",
        "--override", "trainer.enable_progress_bar=false", "--override", "callbacks.model_summary=null",
        "--logger", "csv",
    ]


def test_the_benchmark_times_every_path_on_the_same_data_and_writes_a_report(tiny_mnist, tmp_path, capsys):
    main([*_tiny_args(*tiny_mnist, tmp_path), "--devices", "cpu", "--batch-sizes", "32", "128", "--epochs", "2"])
    report = json.loads((tmp_path / "bench.json").read_text())

    results = report["results"]
    assert [(r["batch_size"], r["path"]) for r in results] == [(b, p) for b in (32, 128) for p in PATHS]
    for r in results:
        assert r["device"] == "cpu"
        assert r["train_samples"] == 500  # 600 tiny training images minus the 100 held out, on every path
        assert len(r["epoch_times_s"]) == 2 and r["epoch_s"] > 0
        assert r["samples_per_s"] == pytest.approx(500 / r["epoch_s"])
        assert r["first_step_s"] > 0
        assert r["peak_memory_mb"] is None or r["peak_memory_mb"] >= 0
    ratio_keys = ["batch_size", "dataloader_over_mlplab", "device", "lightning_step_overhead_ms",
                  "mlplab_over_plain", "mlplab_step_overhead_ms"]
    assert [(r["batch_size"], sorted(r)) for r in report["ratios"]] == [(b, ratio_keys) for b in (32, 128)]
    assert report["machine"]["cpu_count"] >= 1 and report["machine"]["torch"]
    assert report["settings"]["epochs"] == 2 and report["whole_process"] == []
    assert "| cpu | 32 | mlplab |" in capsys.readouterr().out  # the printed table


@pytest.mark.slow
def test_the_whole_process_figures_time_a_run_a_sweep_and_four_separate_runs(tiny_mnist, tmp_path):
    main([*_tiny_args(*tiny_mnist, tmp_path), "--devices", "cpu", "--whole-process", "--skip-epochs"])
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["results"] == []
    (whole,) = report["whole_process"]
    assert whole["single_run_s"] > 0 and whole["sweep_s"] > 0 and whole["separate_runs_s"] > 0
    assert whole["sweep_over_separate"] == pytest.approx(whole["sweep_s"] / whole["separate_runs_s"])

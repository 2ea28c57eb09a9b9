"""The benchmark keeps working: it runs every path on tiny IDX files and writes a complete report.

No timing assertions: only that the report holds the figures, for the same data on every path.
"""

import json
import statistics
from pathlib import Path

import pytest

from mlplab.bench import PATHS, Setting, main, parse_args, ratios, run_order


def _tiny_args(data_dir, files, tmp_path):
    files_override = "{" + ",".join(f"{k}:{v}" for k, v in files.items()) + "}"
    return [
        "--data-dir",
        str(data_dir),
        "--val-size",
        "100",
        "--json",
        str(tmp_path / "bench.json"),
        "--override",
        f"+data.files={files_override}",
        "--override",
        "data.sources=[]",
        "--override",
        "trainer.enable_progress_bar=false",
        "--override",
        "callbacks.model_summary=null",
        "--logger",
        "csv",
    ]


def test_the_benchmark_times_every_path_on_the_same_data_and_writes_a_report(tiny_mnist, tmp_path, capsys):
    main(
        [
            *_tiny_args(*tiny_mnist, tmp_path),
            "--devices",
            "cpu",
            "--batch-sizes",
            "32",
            "128",
            "--epochs",
            "2",
            "--rounds",
            "2",
            "--variant",
            "lean",
            "callbacks=lean",
            "baselines=false",
        ]
    )
    report = json.loads((tmp_path / "bench.json").read_text())

    results = report["results"]
    paths = ["plain", "lightning", "mlplab", "mlplab[lean]", "dataloader"]  # a variant runs right after mlplab
    assert sorted(paths) == sorted([*PATHS, "mlplab[lean]"])
    assert [(r["batch_size"], r["path"]) for r in results] == [(b, p) for b in (32, 128) for p in paths]
    for r in results:
        assert r["device"] == "cpu"
        assert r["train_samples"] == 500  # 600 tiny training images minus the 100 held out, on every path
        assert [len(times) for times in r["rounds_s"]] == [2, 2] and len(r["epoch_times_s"]) == 4
        assert 0 < r["fastest_epoch_s"] <= r["epoch_s"]
        assert r["samples_per_s"] == pytest.approx(500 / r["epoch_s"])
        assert r["first_step_s"] > 0
        assert r["peak_memory_mb"] is None or r["peak_memory_mb"] >= 0
    ratio_keys = ["batch_size", "device", "lightning_step_overhead_ms", "mlplab_step_overhead_ms", "variants"] + [
        f"{a}_over_{b}{suffix}"
        for a, b in (("dataloader", "mlplab"), ("lightning", "plain"), ("mlplab", "plain"))
        for suffix in ("", "_fastest", "_range")
    ]
    assert [(r["batch_size"], sorted(r)) for r in report["ratios"]] == [(b, sorted(ratio_keys)) for b in (32, 128)]
    for row in report["ratios"]:  # paired by round: the median of the two rounds' ratios, within their range
        low, high = row["mlplab_over_plain_range"]
        assert low <= row["mlplab_over_plain"] <= high
        lean = row["variants"]["mlplab[lean]"]
        assert lean["over_mlplab_range"][0] <= lean["over_mlplab"] <= lean["over_mlplab_range"][1]
    assert report["settings"]["variants"] == {"lean": ["callbacks=lean", "baselines=false"]}
    assert report["machine"]["cpu_count"] >= 1 and report["machine"]["torch"]
    assert report["settings"]["epochs"] == 2 and report["whole_process"] == []
    printed = capsys.readouterr().out  # the tables
    assert "| cpu | 32 | mlplab |" in printed and "| cpu | 128 | mlplab[lean] |" in printed


@pytest.mark.slow
def test_the_whole_process_figures_time_a_run_a_sweep_and_four_separate_runs(tiny_mnist, tmp_path):
    main([*_tiny_args(*tiny_mnist, tmp_path), "--devices", "cpu", "--whole-process", "--skip-epochs"])
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["results"] == []
    (whole,) = report["whole_process"]
    assert whole["single_run_s"] > 0 and whole["sweep_s"] > 0 and whole["separate_runs_s"] > 0
    assert whole["sweep_over_separate"] == pytest.approx(whole["sweep_s"] / whole["separate_runs_s"])


def test_ratios_pair_the_paths_round_by_round():
    # the machine ran everything twice as slowly in round 2: within each round mlplab takes 1.2x the plain loop
    def run(path, *rounds):
        times = [t for r in rounds for t in r]
        return {
            "path": path,
            "device": "cpu",
            "batch_size": 100,
            "train_samples": 1000,
            "rounds_s": list(rounds),
            "fastest_epoch_s": min(times),
        }

    (row,) = ratios([run("plain", [1.0, 1.0], [2.0, 2.0]), run("mlplab", [1.2, 1.2], [2.4, 2.4])])
    assert row["mlplab_over_plain"] == pytest.approx(1.2)
    assert row["mlplab_over_plain_range"] == pytest.approx([1.2, 1.2])
    assert row["mlplab_over_plain_fastest"] == pytest.approx(1.2)
    assert row["mlplab_step_overhead_ms"] == pytest.approx(statistics.median([0.2 / 10 * 1e3, 0.4 / 10 * 1e3]))
    assert "dataloader_over_mlplab" not in row  # a path that did not run gives no ratio


def test_a_variant_of_the_mlplab_path_gets_its_own_setting_and_ratio():
    # what a variant runs: the mlplab path with its overrides added to the setting's
    setting = Setting(Path("data"), "cpu", 64, 1, overrides=("logger=csv",))
    runs = list(run_order(setting, ["plain", "mlplab", "dataloader"], {"bf16": ["trainer.precision=bf16-mixed"]}))
    assert [path for path, _ in runs] == ["plain", "mlplab", "mlplab[bf16]", "dataloader"]
    assert runs[2][1].overrides == ("logger=csv", "trainer.precision=bf16-mixed") and runs[1][1] == setting

    def run(path, *rounds):
        return {
            "path": path,
            "device": "cpu",
            "batch_size": 64,
            "train_samples": 640,
            "rounds_s": list(rounds),
            "fastest_epoch_s": min(t for r in rounds for t in r),
        }

    (row,) = ratios([run("mlplab", [2.0], [4.0]), run("mlplab[bf16]", [1.0], [3.0])])
    assert row["variants"]["mlplab[bf16]"] == {
        "over_mlplab": pytest.approx(0.625),
        "over_mlplab_range": [0.5, 0.75],
        "over_mlplab_fastest": 0.5,
    }


@pytest.mark.parametrize("variant", [["bf16"], ["trainer.precision=bf16-mixed"], ["bf16", "bf16-mixed"]])
def test_a_variant_needs_a_name_and_overrides(variant, capsys):
    with pytest.raises(SystemExit):
        parse_args(["--variant", *variant])
    assert "give a name, then KEY=VALUE overrides" in capsys.readouterr().err


def _write_summary(folder: Path, rows: list[str]) -> Path:
    folder.mkdir(parents=True)
    header = "job,status,lr,best val/acc,test/acc,epochs,wall_time_s,folder,error,overrides"
    (folder / "summary.csv").write_text("\n".join([header, *rows]) + "\n")
    return folder


def test_a_sweeps_results_are_read_back_from_its_report_and_a_pruned_trial_is_never_its_best(tmp_path):
    from mlplab.bench.sweep_results import sweep_results

    folder = _write_summary(
        tmp_path / "sweep",
        [
            "0,completed,0.01,0.95,0.94,5,10,0,,lr=0.01",
            "1,pruned,10,0.99,0.10,2,4,1,,lr=10",  # its val/acc came first, but it is pruned
            "2,completed,0.001,0.97,0.96,5,10,2,,lr=0.001",
            "3,failed,0.1,,,1,1,3,boom,lr=0.1",
        ],
    )
    results = sweep_results(folder)
    assert results["statuses"] == {"completed": 2, "pruned": 1, "failed": 1}
    assert results["epochs_trained"] == 13
    assert (results["best_job"], results["best_monitor"], results["best_test"]) == (2, 0.97, 0.96)
    assert results["test_by_job"] == {0: 0.94, 1: 0.10, 2: 0.96, 3: None}


@pytest.mark.slow
def test_the_sweep_sections_time_the_tuning_grid_and_a_search_with_and_without_its_pruner(tiny_mnist, tmp_path, capsys):
    args = [*_tiny_args(*tiny_mnist, tmp_path), "--override", "data.batch_size=16"]  # one-cycle needs a few steps
    main([*args, "--devices", "cpu", "--skip-epochs", "--tuning-grid", "--search-pruning", "--search-trials", "3"])
    report = json.loads((tmp_path / "bench.json").read_text())
    (grid,) = report["tuning_grid"]
    for launcher in ("parallel", "stacked"):
        (run,) = grid[launcher]
        assert run["wall_s"] > 0 and run["statuses"] == {"completed": 4}
        assert run["epochs_trained"] == 4 * 2  # 4 jobs of 2 epochs
    assert grid["parallel_over_stacked"] == [grid["parallel"][0]["wall_s"] / grid["stacked"][0]["wall_s"]]
    # how far the two launchers' test/acc of one job lie apart (1 thread against 2: float sums in another order)
    assert 0 <= grid["largest_test_acc_difference"][0] <= 1
    (search,) = report["search_pruning"]
    for arm in ("pruned", "unpruned"):
        (run,) = search[arm]
        assert run["jobs"] == 3 and run["best_job"] is not None
    assert search["unpruned"][0]["statuses"] == {"completed": 3}  # pruner=null: no trial pruned
    replayed = search["replayed"]  # the unpruned search's learning curves, every candidate pruner replayed on them
    assert replayed["trials"] == 3 and replayed["unpruned"]["epochs"] == search["unpruned"][0]["epochs_trained"]
    assert replayed["unpruned"]["best"] == pytest.approx(search["unpruned"][0]["best_monitor"])
    printed = capsys.readouterr().out
    assert "parallel / stacked" in printed and "pruned / unpruned, round 1" in printed and "replayed" in printed


def test_a_pruner_replayed_on_learning_curves_prunes_the_hopeless_trials_and_keeps_the_best():
    from optuna.pruners import MedianPruner

    from mlplab.bench.pruner_replay import replay

    good = [[0.90, 0.95, 0.97]] * 3
    hopeless = [[0.10, 0.11, 0.12]]
    curves = [*good, *hopeless, [0.92, 0.96, 0.98], *hopeless]
    result = replay(curves, MedianPruner(n_startup_trials=3, n_warmup_steps=0), "maximize")
    # the 3 startup trials and the good one train 3 epochs each; the two hopeless ones stop after their first
    assert result == {"epochs": 4 * 3 + 2 * 1, "pruned": 2, "best": 0.98}
    assert replay(curves, MedianPruner(n_startup_trials=10), "maximize") == {"epochs": 18, "pruned": 0, "best": 0.98}


def _suggested_bench_arguments() -> list[list[str]]:
    """The arguments of every `make bench ARGS="..."` and one-line `python -m mlplab.bench ...` in the docs."""
    import re
    import shlex

    from mlplab.config.location import PROJECT_ROOT

    found = []
    for name in ("README.md", "BENCHMARKS.md"):
        text = re.sub(r"\\\n\s*", " ", (PROJECT_ROOT / name).read_text())  # a shell's line continuations
        found += [shlex.split(m) for m in re.findall(r'make bench ARGS="([^"]*)"', text)]
        for line in re.findall(r"python -m mlplab\.bench([^`\n\\\\]*)(?:`|\n)", text):
            found.append(shlex.split(line.split("#")[0]))
    return found


def test_every_benchmark_command_the_docs_suggest_parses():
    commands = _suggested_bench_arguments()
    assert ["--skip-epochs", "--search-pruning"] in commands and len(commands) >= 10
    for args in commands:
        if "--help" in args:
            continue
        parsed = parse_args(args)  # argparse exits (SystemExit) on an unknown or malformed argument
        assert parsed.devices, args

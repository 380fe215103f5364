"""`compare <run folders…>`: Table 1 (tasks x methods) and Table 2 (training time, completion length) from run
folders."""

import csv
from types import SimpleNamespace

import pytest

from maestro_lit.callbacks.run_info import RunInfo
from maestro_lit.evals.base import BenchmarkResult
from maestro_lit.evals.compare import main, read_benchmarks
from maestro_lit.evals.report import write_all


def fake_run(folder, method, seconds, results, step=4, task="emobench"):
    """A run folder as the callbacks write it: benchmarks.csv via report.write_all, run_info.json via RunInfo."""
    log_dir = folder / "lightning_logs" / "version_0"
    info = RunInfo(method=method)
    info.train_seconds = seconds
    trainer = SimpleNamespace(
        is_global_zero=True, datamodule=SimpleNamespace(task=task), global_step=step, log_dir=str(log_dir)
    )
    info.on_train_end(trainer, SimpleNamespace())
    write_all(
        log_dir,
        [BenchmarkResult("emobench", {"preference_proxy": 10.0, "completion_words": 99.0}, 0, 4, 0.1)],
        step - 2,
        "train_step",
    )
    write_all(
        log_dir, [BenchmarkResult(name, metrics, 0, 4, 0.1) for name, metrics in results.items()], step, "fit_end"
    )
    return str(folder)


def test_two_runs_give_both_tables(tmp_path):
    maestro = fake_run(
        tmp_path / "maestro_run",
        "maestro",
        80.0,
        {
            "emobench": {"preference": 47.66, "letter_accuracy": 50.0, "completion_words": 40.0, "unparsed_share": 0.0},
            "opus_books": {"preference": 12.6, "chrf": 41.2, "bleu": 13.0, "completion_words": 20.0},
            "tombench": {"preference": 100.0, "judge_false_accept": 1.0, "letter_accuracy": 25.0},
            "alpaca_eval": {"win_rate": 3.0},  # the optional suite is ignored by the tables
        },
    )
    equal = fake_run(
        tmp_path / "equal_run",
        "equal",
        100.0,
        {
            "emobench": {"preference_proxy": 42.97, "letter_accuracy": 25.0, "completion_words": 60.0},
        },
    )
    out = tmp_path / "tables"
    assert main([maestro, equal, "--output", str(out)]) == 0
    table1 = (out / "table1.md").read_text()
    assert "| task | maestro | equal |" in table1
    assert "| EmoBench | 47.7 (acc 50.0) | 43.0† (acc 25.0) |" in table1  # the latest evaluation, not step 2's 10.0
    assert "| OPUS | 12.6 (chrF 41.2, BLEU 13.0) | – |" in table1
    assert "| ToMBench | 100.0‡ (acc 25.0) | – |" in table1 and "‡ the judge accepted more than 20 %" in table1
    assert "alpaca" not in table1
    table2 = (out / "table2.md").read_text()
    assert "| maestro | 1 | 80.0 | 0.0 % | 30.0 |" in table2 and "| equal | 1 | 100.0 | +25.0 % | 60.0 |" in table2
    with (out / "table1.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {"task": "emobench", "method": "equal", "metric": "letter_accuracy", "value": "25.0"} in rows
    with (out / "table2.csv").open() as fh:
        assert [r["method"] for r in csv.DictReader(fh)] == ["maestro", "equal"]


def test_labels_group_runs_of_one_method_across_tasks(tmp_path):
    a = fake_run(tmp_path / "a", "Conductor", 10.0, {"emobench": {"preference": 50.0, "completion_words": 10.0}})
    b = fake_run(
        tmp_path / "b", "Conductor", 30.0, {"tombench": {"preference": 70.0, "completion_words": 30.0}}, task="tombench"
    )
    out = tmp_path / "t"
    main([a, b, "--label", "maestro", "--label", "maestro", "--output", str(out)])
    table1, table2 = (out / "table1.md").read_text(), (out / "table2.md").read_text()
    assert "| EmoBench | 50.0 |" in table1 and "| ToMBench | 70.0 |" in table1
    assert "| maestro | 2 | 40.0 | 0.0 % | 20.0 |" in table2  # b's stale step-2 EmoBench row does not replace a's


def test_missing_results_and_bad_csv_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no benchmarks.csv"):
        main([str(tmp_path / "empty"), "--output", str(tmp_path / "o")])
    bad = tmp_path / "benchmarks.csv"
    bad.write_text("step,trigger,benchmark,metric,value\nx,fit_end,emobench,preference,1\n")
    with pytest.raises(ValueError, match=r"benchmarks.csv:2"):
        read_benchmarks(bad)

"""The end-of-run summary (printed by the CLI after fit, saved as summary.md) and the quieter Lightning output."""

import logging
from pathlib import Path
from types import SimpleNamespace

import torch
from fit_configs import small_fit_config, tensorboard_logger

from maestro_lit.conductor.base import Scalarization
from maestro_lit.evals.base import BenchmarkResult
from maestro_lit.evals.report import append_csv
from maestro_lit.summary import FILE_NAME, TITLE, EndOfRunSummary, split_windows, task_table


def test_a_two_step_cli_fit_ends_with_the_summary(tmp_path, capsys):
    from maestro_lit.cli import cli_main

    config = small_fit_config(tmp_path, max_steps=2, callbacks=[], logger=tensorboard_logger(tmp_path / "logs"))
    config["standard_callbacks"] = ["summary"]
    cli = cli_main({"fit": config})

    run_dir = Path(cli.trainer.log_dir)
    assert run_dir == tmp_path / "logs" / "run" / "version_0"
    printed = capsys.readouterr().out
    saved = (run_dir / FILE_NAME).read_text(encoding="utf-8")
    assert saved.startswith(TITLE) and saved in printed
    assert f"- run folder: {run_dir}\n" in saved
    assert f"    tensorboard --logdir {run_dir}\n" in saved
    assert "| train/scalar_reward | " in saved and "| train/reward/length | " in saved
    assert "## Training: mean of step 1 → step 2" in saved  # a run shorter than two windows: split in halves
    assert "## Conductor weights per category" in saved
    rows = [line for line in saved.splitlines() if line.startswith(("| creative |", "| factual |", "| concise |"))]
    assert rows and all(abs(sum(float(v) for v in row.strip("|").split("|")[1:]) - 1) < 0.01 for row in rows)


def _record(step, scalar, weights, categories):
    return SimpleNamespace(
        step=step,
        scalar_rewards=torch.tensor(scalar),
        raw_rewards=torch.tensor([[s, float("nan")] for s in scalar]),
        component_names=["a", "b"],
        completion_lengths=torch.tensor([4] * len(scalar)),
        choice=Scalarization(weights=torch.tensor(weights)),
        categories=categories,
    )


def test_windows_means_weights_and_resume(tmp_path):
    summary = EndOfRunSummary(window=2)
    module = SimpleNamespace(last_step=None, scalarizer=None, rollouts_done=5)
    for step in range(1, 6):
        module.last_step = _record(step, [float(step), float(step)], [[1.0, 0.0], [0.0, 1.0]], ["x", "y"])
        summary.on_train_batch_end(None, module, None, None, 0)
        summary.on_train_batch_end(None, module, None, None, 0)  # the same record twice counts once
    resumed = EndOfRunSummary(window=2)
    resumed.load_state_dict(summary.state_dict())
    trainer = SimpleNamespace(checkpoint_callbacks=[], loggers=[])
    text = resumed.render(trainer, module, tmp_path)
    assert "## Training: mean of steps 1-2 → steps 4-5" in text
    assert "| train/scalar_reward | 1.5 → 4.5 |" in text and "| train/reward/b | nan → nan |" in text
    assert "| x | 1.000 | 0.000 |" in text and "| y | 0.000 | 1.000 |" in text
    assert "tensorboard" not in text  # no TensorBoard logger, no command


def test_split_windows_never_shares_a_step():
    steps = [{"step": s, "values": {}} for s in (1, 2, 3)]
    assert split_windows(steps, steps) == (steps[:1], steps[1:])
    assert split_windows(steps[:1], steps[:1]) == (steps[:1], steps[:1])
    assert split_windows(steps[:1], steps[2:]) == (steps[:1], steps[2:])


def test_task_table_reads_every_task_from_the_csv(tmp_path):
    results = [
        BenchmarkResult("emobench", {"preference_proxy": 40.0, "letter_accuracy": 25.0}, 0, 4, 1.0),
        BenchmarkResult("opus_books", {"preference_proxy": 10.0, "bleu": 2.5}, 0, 4, 1.0),
    ]
    for result in results:  # two evaluation callbacks, one task each, as the task configs run them
        append_csv(tmp_path, [result], 3, "fit_end")
    table = "\n".join(task_table(tmp_path))
    assert "| EmoBench | 40.0† (acc 25.0) |" in table and "| OPUS | 10.0† (BLEU 2.5) |" in table


def test_a_summary_md_the_callback_did_not_write_is_left_alone(tmp_path):
    foreign = tmp_path / FILE_NAME
    foreign.write_text("my notes\n", encoding="utf-8")
    summary = EndOfRunSummary()
    trainer = SimpleNamespace(
        log_dir=str(tmp_path), default_root_dir=str(tmp_path), is_global_zero=True, checkpoint_callbacks=[], loggers=[]
    )
    summary.on_fit_end(trainer, SimpleNamespace(rollouts_done=0))
    assert foreign.read_text(encoding="utf-8") == "my notes\n"
    assert summary.text.startswith(TITLE) and summary.path is None


def test_lightning_tips_are_dropped_and_other_lines_kept():
    from maestro_lit.cli import LightningNoise

    def record(message):
        return logging.LogRecord("lightning", logging.INFO, __file__, 1, message, None, None)

    quiet = LightningNoise()
    assert not quiet.filter(record("💡 Tip: For seamless cloud logging, try installing [litlogger](https://x)"))
    assert quiet.filter(record("GPU available: False, used: False"))


def test_the_parameter_summary_shows_no_unmeasured_flops(monkeypatch):
    import rich
    from rich.console import Console

    from maestro_lit.callbacks.model_summary import ParameterSummary

    data = [(" ", ["0"]), ("Name", ["policy"]), ("Type", ["Policy"]), ("Params", ["1.1 M"]), ("FLOPs", ["0"])]
    console = Console(record=True, width=100)
    monkeypatch.setattr(rich, "get_console", lambda: console)
    ParameterSummary.summarize(data, 1_100_000, 74_300, 4.2, {"train": 3, "eval": 0}, 0)
    text = console.export_text()
    assert "FLOPs" not in text and "policy" in text and "Trainable parameters: 74.3 K of 1.1 M" in text
    ParameterSummary.summarize(data, 1_100_000, 74_300, 4.2, {"train": 3, "eval": 0}, 5_000)
    assert "Total FLOPs: 5.0 K" in console.export_text()  # measured FLOPs: Lightning's own table

"""The seven tasks through the project's entry points: convert/compare subcommands, task configs' defaults."""

from __future__ import annotations

import json

import pytest

from maestro_lit.cli import main
from maestro_lit.data.prompts import PromptDataModule
from maestro_lit.data.task_specs import TASKS
from maestro_lit.evals.paper.evaluation import PaperTaskEvaluation


def test_convert_subcommand_writes_the_prepared_format(tmp_path, capsys):
    original = tmp_path / "ss_gen_dev.jsonl"
    original.write_text(
        json.dumps(
            {"id": 1, "chapter": "Park", "explanation": "going out", "title": "A walk", "story_content": "I walk."}
        )
        + "\n"
    )
    main(["convert", "ss_gen", str(original), str(tmp_path / "out.jsonl")])
    row = json.loads((tmp_path / "out.jsonl").read_text().splitlines()[0])
    assert "I walk." in row["reference"] and "A walk" in row["prompt"]
    assert "<answer>" in row["prompt"] and row["split"] == "validation"  # guessed from "dev" in the file name


def test_compare_subcommand_reports_a_bad_folder_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["compare", str(tmp_path)])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "Traceback" not in err


def test_a_task_alone_trains_on_its_shipped_sample():
    data = PromptDataModule(task="tombench", val_split="test")
    assert data.train_path == data.val_path == str(TASKS["tombench"].sample)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert set(batch["task"]) == {"tombench"} and all(batch["reference"])


def test_an_unknown_task_is_named():
    with pytest.raises(ValueError, match="emobenchh"):
        PromptDataModule(task="emobenchh")


def test_one_evaluation_callback_per_task_with_its_own_state_key():
    a, b = PaperTaskEvaluation("emobench"), PaperTaskEvaluation("tombench", limit=2, max_new_tokens=9)
    assert a.state_key != b.state_key
    assert [x.name for x in a.benchmarks] == ["emobench"] and b.benchmarks[0].limit == 2 and b.max_new_tokens == 9
    assert b.benchmarks[0].split == "test"


def test_nover_template_wraps_plain_questions():
    plain, wrapped = PromptDataModule(), PromptDataModule(prompt_template="nover")
    for data in (plain, wrapped):
        data.setup("fit")
    raw, templated = (next(iter(d.val_dataloader()))["prompt"][0] for d in (plain, wrapped))
    assert templated.startswith(f"\nQuestion: {raw}\n") and templated.endswith("<answer>\n...\n</answer>\n")
    assert "<think>" not in raw


def test_a_task_file_composed_after_the_quickstart_replaces_its_evaluation_of_that_task(tiny_model_path, tmp_path):
    from pathlib import Path

    from maestro_lit.cli import cli_main

    root = Path(__file__).resolve().parents[1]
    cli = cli_main(
        [
            "--config",
            str(root / "configs/quickstart.yaml"),
            "--config",
            str(root / "configs/tasks/emobench.yaml"),
            f"--model.policy.name_or_path={tiny_model_path}",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.logger=false",
        ],
        run=False,
    )
    evaluations = [c for c in cli.trainer.callbacks if isinstance(c, PaperTaskEvaluation)]
    assert sorted(c.benchmarks[0].name for c in evaluations) == sorted(TASKS)  # seven, no duplicate
    emobench = next(c for c in evaluations if c.benchmarks[0].name == "emobench")
    assert emobench.max_new_tokens == 128  # the task file's value, not the quick start's 64

"""PaperTask on the shipped samples: deterministic metrics, the proxy judge, `validate` on the tiny model for all."""

import csv
import math

import pytest
from fit_configs import small_fit_config

from maestro_lit.cli import cli_main
from maestro_lit.data.task_specs import TASKS
from maestro_lit.evals.callback import BenchmarkCallback
from maestro_lit.evals.paper.benchmark import PaperTask, judge_question
from maestro_lit.evals.paper.metrics import answer_letters, answer_text, extract_answer, reference_letters


def answering(task, good):
    """A fake generate_chat: the reference (good) or a wrong option/empty text (bad), inside NOVER's format."""
    references = {row["prompt"]: row["reference"] for row in _rows(task)}

    def generate(conversations, max_new_tokens):
        out = []
        for conversation in conversations:
            reference = references[conversation[0]["content"]]
            answer = (
                reference if good else ("Emotion: D: x, Cause: D: y" if "Emotion" in reference else "Z. nothing at all")
            )
            out.append(f"<think>\nthinking here\n</think>\n<answer>\n{answer}\n</answer>")
        return out

    return generate


def _rows(task):
    from maestro_lit.data.prepared import read_prepared

    return [row for _, row in read_prepared(str(TASKS[task].sample), "test", task)]


@pytest.mark.parametrize("task", list(TASKS))
def test_metrics_per_task_with_right_and_wrong_answers(task):
    spec = TASKS[task]
    good = PaperTask(task).evaluate(answering(task, True), 16).metrics
    bad = PaperTask(task).evaluate(answering(task, False), 16).metrics
    assert good["n_items"] == 4 and good["format_rate"] == 100.0 and good["unparsed_share_proxy"] == 0.0
    assert good["preference_proxy"] == 100.0 and bad["preference_proxy"] == 0.0
    assert good["completion_words"] == pytest.approx(
        sum(
            len(f"<think>\nthinking here\n</think>\n<answer>\n{r['reference']}\n</answer>".split()) for r in _rows(task)
        )
        / 4
    )
    assert good["undecided"] == 0
    if "letter" in spec.metrics and good["n_multiple_choice"]:
        assert good["letter_accuracy"] == 100.0 and bad["letter_accuracy"] == 0.0
    if "rouge_l" in spec.metrics:
        assert good["rouge_l"] == pytest.approx(100.0) and bad["rouge_l"] < 50
    if "chrf" in spec.metrics:
        assert good["chrf"] == pytest.approx(100.0) and good["bleu"] == pytest.approx(100.0) and bad["chrf"] < 20
    assert "preference" not in good  # the stand-in never reports the unqualified name


def test_answer_extraction_and_letters():
    assert extract_answer("<think>a</think><answer> B. two </answer>") == "B. two"
    assert extract_answer("<answer>first</answer> and <answer>second") == "second"
    assert extract_answer("no tags") is None and answer_text("<think>long</think> plain") == "plain"
    prompt = "Q\n\na) up\n\nb) down"
    assert reference_letters("(B) down", prompt) == ("B",) and reference_letters("b", prompt) == ("B",)
    assert reference_letters("Because of gravity", prompt) is None  # free text starting with a letter-word
    assert reference_letters("C. sideways", prompt) is None  # not an offered option
    assert answer_letters("The answer is (b)", ("B",)) == ("B",) and answer_letters(
        "Emotion: A: x\nCause: C: y", ("A", "C")
    ) == ("A", "C")
    assert answer_letters("Emotion: A only", ("A", "C")) is None
    assert (
        judge_question("\nQuestion: hi\n\nAnswer the question and return in the following format:\n...")
        == "Question: hi"
    )


def test_validate_on_the_tiny_model_logs_all_seven(tmp_path, tiny_model_path):
    benchmarks = [
        {"class_path": "maestro_lit.evals.paper.benchmark.PaperTask", "init_args": {"task": t, "limit": 1}}
        for t in TASKS
    ]
    callback = {
        "class_path": "maestro_lit.evals.callback.BenchmarkCallback",
        "init_args": {
            "benchmarks": benchmarks,
            "max_new_tokens": 4,
            "progress_bar": False,
            "output_dir": str(tmp_path),
        },
    }
    config = small_fit_config(tmp_path, 1, [callback], limit_val_batches=1)
    config["model"]["policy"]["name_or_path"] = tiny_model_path
    cli = cli_main({"validate": config})
    [bench] = [c for c in cli.trainer.callbacks if isinstance(c, BenchmarkCallback)]
    assert [r.name for r in bench.last_results] == list(TASKS)
    logged = cli.trainer.callback_metrics
    for task in TASKS:
        assert f"bench/{task}/preference_proxy" in logged and f"bench/{task}/completion_words" in logged
        assert not math.isnan(float(logged[f"bench/{task}/completion_words"]))
    assert "bench/opus_books/chrf" in logged and "bench/tombench/letter_accuracy" in logged
    with (tmp_path / "benchmarks.csv").open() as fh:
        assert {row["benchmark"] for row in csv.DictReader(fh)} == set(TASKS)

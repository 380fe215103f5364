"""`convert <task> <input> <output>`: each original release format -> NOVER's prepared format."""

import json

import pytest

from maestro_lit.data.convert import main
from maestro_lit.data.prepared import TaskDataError, read_prepared
from maestro_lit.data.templates import format_instruction

EU = {
    "qid": "1",
    "language": "en",
    "coarse_category": "complex_emotions",
    "finegrained_category": "emotion_transition",
    "scenario": "Pia burnt the cake, but her guests loved it anyway.",
    "subject": "Pia",
    "emotion_choices": ["Joy", "Shame", "Anger", "Fear"],
    "emotion_label": "Joy",
    "cause_choices": ["The cake burnt", "The guests loved the cake", "She is tired", "It rained"],
    "cause_label": "The guests loved the cake",
}
EA = {
    "qid": "2",
    "language": "en",
    "category": "Personal-Others",
    "question type": "Action",
    "scenario": "Ivo's friend lost her job.",
    "subject": "Ivo",
    "choices": ["Ignore her", "Offer support and help her look for work", "Laugh", "Leave"],
    "label": "Offer support and help her look for work",
}
TOM = {
    "能力\nABILITY": "Belief: Location false beliefs",
    "序号\nINDEX": 1,
    "故事": "小红把球放进盒子里。",
    "问题": "球在哪里？",
    "选项A": "盒子",
    "选项B": "篮子",
    "选项C": "",
    "选项D": "",
    "STORY": "Hong puts the ball in the box.",
    "QUESTION": "Where is the ball?",
    "OPTION-A": "Box",
    "OPTION-B": "Basket",
    "OPTION-C": "",
    "OPTION-D": "",
    "答案\nANSWER": "A",
}
SS = {
    "id": "7",
    "chapter": "daily routines",
    "explanation": "helps children wash hands.",
    "title": "Washing hands",
    "story_content": "I wash my hands.",
}


def jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def run(tmp_path, task, rows, *extra, name="input.jsonl", out="out.jsonl"):
    assert main([task, jsonl(tmp_path / name, rows), str(tmp_path / out), *extra]) == 0
    return [row for _, row in read_prepared(str(tmp_path / out))]


def test_emobench_eu_and_ea(tmp_path):
    eu, ea = run(tmp_path, "emobench", [EU, EA], "--split", "test")
    assert eu["prompt"].startswith(
        "\nQuestion: Pia burnt the cake, but her guests loved it anyway.\n What emotion is Pia feeling, and why?"
    )
    assert (
        "Emotion Options:\nA: Joy\nB: Shame\nC: Anger\nD: Fear\n\n"
        "Cause Options:\nA: The cake burnt\nB: The guests loved the cake" in eu["prompt"]
    )
    assert eu["prompt"].endswith(
        "<answer>\nEmotion: [option letter]: [option text]\nCause: [option letter]: [option text]\n</answer>\n"
    )
    assert eu["reference"] == "Emotion: A: Joy, Cause: B: The guests loved the cake"
    assert (
        "best course of action for Ivo" in ea["prompt"]
        and "Action Options:\nA: Ignore her\nB: Offer support" in ea["prompt"]
    )
    assert ea["reference"] == "B: Offer support and help her look for work"
    assert (eu["split"], eu["task"], eu["category"], ea["category"]) == (
        "test",
        "emobench",
        "emobench_eu",
        "emobench_ea",
    )


def test_emobench_label_not_among_choices_named(tmp_path):
    with pytest.raises(TaskDataError, match=r"input.jsonl:1: label 'Nope' is not one of the choices"):
        run(tmp_path, "emobench", [{**EA, "label": "Nope"}])


def test_tombench_english_and_chinese(tmp_path):
    [en] = run(tmp_path, "tombench", [TOM], name="train.jsonl")
    assert (
        en["prompt"]
        == "\nQuestion: Hong puts the ball in the box.\n\nWhere is the ball?\n\nOptions:\nA. Box\nB. Basket"
        + format_instruction()
    )
    assert (en["reference"], en["split"], en["category"]) == ("A. Box", "train", "Belief")
    [zh] = run(tmp_path, "tombench", [TOM], "--language", "zh", out="zh.jsonl")
    assert (
        "小红把球放进盒子里。\n\n球在哪里？\n\nOptions:\nA. 盒子\nB. 篮子" in zh["prompt"]
        and zh["reference"] == "A. 盒子"
    )
    with pytest.raises(TaskDataError, match="answer letter 'C'"):
        run(tmp_path, "tombench", [{**TOM, "答案\nANSWER": "C"}], out="bad.jsonl")


def test_ss_gen_split_from_file_name(tmp_path):
    [row] = run(tmp_path, "ss_gen", [SS], name="dev.jsonl")
    assert (
        row["split"] == "validation" and row["reference"] == "I wash my hands." and row["category"] == "daily routines"
    )
    assert (
        "Title: Washing hands" in row["prompt"]
        and "helps children wash hands" in row["prompt"]
        and row["prompt"].startswith("\nQuestion: ")
    )


def test_opus_books_pair_and_direction(tmp_path):
    rows = [{"id": "0", "translation": {"en": "The sea.", "fr": "La mer."}}]
    [row] = run(tmp_path, "opus_books", rows, out="o.csv")
    assert row["prompt"] == "\nTranslate the following text from English to French:\n\nThe sea." + format_instruction()
    assert row["reference"] == "La mer." and row["category"] == "en-fr"
    [back] = run(tmp_path, "opus_books", rows, "--source-lang", "fr", "--target-lang", "en", out="o2.parquet")
    assert "from French to English:\n\nLa mer." in back["prompt"] and back["reference"] == "The sea."
    with pytest.raises(TaskDataError, match="language 'de' not in the translation dict"):
        run(tmp_path, "opus_books", rows, "--source-lang", "de", out="o3.jsonl")


@pytest.mark.parametrize("task", ["natural_reasoning", "general_thoughts", "webinstruct"])
def test_question_answer_tasks_skip_missing_references(tmp_path, task, capsys):
    rows = [{"question": "What is 2+2?", "reference_answer": "4"}, {"question": "Unanswered?", "reference_answer": ""}]
    if task == "webinstruct":
        rows = [{"question": "What is 2+2?", "answer": "4"}, {"question": "Unanswered?", "answer": None}]
    [row] = run(tmp_path, task, rows)
    assert row["prompt"] == "\nQuestion: What is 2+2?" + format_instruction() and row["reference"] == "4"
    assert "skipped 1 without a reference" in capsys.readouterr().out


def test_custom_fields_and_append_build_one_file_with_two_splits(tmp_path):
    rows = [{"problem": "Q1", "solution": "A1"}]
    out = tmp_path / "gt.jsonl"
    main(
        [
            "general_thoughts",
            jsonl(tmp_path / "a.jsonl", rows),
            str(out),
            "--question-field",
            "problem",
            "--answer-field",
            "solution",
        ]
    )
    main(
        [
            "general_thoughts",
            jsonl(tmp_path / "b.jsonl", rows),
            str(out),
            "--question-field",
            "problem",
            "--answer-field",
            "solution",
            "--split",
            "test",
            "--append",
        ]
    )
    assert [r["split"] for _, r in read_prepared(str(out))] == ["train", "test"]
    with pytest.raises(TaskDataError, match="no question field"):
        main(
            [
                "natural_reasoning",
                jsonl(tmp_path / "c.jsonl", [{"text": "Q1", "answer": "A1"}]),
                str(tmp_path / "c_out.jsonl"),
            ]
        )


def test_convert_never_overwrites_what_it_did_not_create(tmp_path, capsys):
    from maestro_lit import cli

    source = jsonl(tmp_path / "train.jsonl", [SS])
    original = (tmp_path / "train.jsonl").read_bytes()
    target, link, mine = tmp_path / "keep.jsonl", tmp_path / "link.jsonl", tmp_path / "mine.jsonl"
    target.write_text("precious\n")
    link.symlink_to(target)
    mine.write_text("mine\n")
    (tmp_path / "to_input.jsonl").symlink_to(tmp_path / "train.jsonl")

    def refused(output: str, *extra: str) -> str:
        with pytest.raises(SystemExit) as stop:
            cli.main(["convert", "ss_gen", source, output, *extra])
        [error] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
        assert stop.value.code == 2 and output in error
        return error

    assert "is the input" in refused(source, "--overwrite")
    assert "is the input" in refused(str(tmp_path / "to_input.jsonl"), "--overwrite")
    assert "symlink" in refused(str(link)) and "already exists" in refused(str(mine))
    assert (tmp_path / "train.jsonl").read_bytes() == original and target.read_text() == "precious\n"
    assert mine.read_text() == "mine\n"

    cli.main(["convert", "ss_gen", source, str(link), "--overwrite"])  # replaces the link, never writes through it
    assert not link.is_symlink() and target.read_text() == "precious\n"
    assert [row["reference"] for _, row in read_prepared(str(link))] == ["I wash my hands."]
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]

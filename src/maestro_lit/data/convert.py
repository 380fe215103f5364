"""``python -m maestro_lit convert <task> <input> <output>``: a task's original release -> NOVER's format.

Output rows are ``prompt, reference, split, task`` (CSV, JSONL or Parquet by the output's
extension), with prompts built from NOVER's templates (``templates.py``) so converted files
match the prepared ones the paper trained on. Inputs (JSONL, CSV or Parquet) and their fields:

- ``emobench``: EmoBench ``EU.jsonl`` rows (``scenario, subject, emotion_choices, emotion_label,
  cause_choices, cause_label``) and ``EA.jsonl`` rows (``scenario, subject, choices, label``);
  the kind is told from the fields, so both files convert with the same command.
- ``tombench``: ToMBench rows with English ``STORY, QUESTION, OPTION-A..D`` and Chinese
  ``故事, 问题, 选项A..D`` fields and the answer letter under ``答案\\nANSWER``; ``--language en|zh``.
- ``ss_gen``: SS-GEN rows ``id, chapter, explanation, title, story_content``; the prompt asks
  for the social story (our wording: SS-GEN's prepared prompt is not published), the story is
  the reference.
- ``opus_books``: rows with a ``translation`` dict for one language pair; ``--source-lang``
  and ``--target-lang`` (ISO codes; default: the dict's first key is the source).
- ``natural_reasoning``, ``general_thoughts``, ``webinstruct``: a question plus a reference
  answer (``question``/``reference_answer``/``answer`` by default; ``--question-field``,
  ``--answer-field``). Rows without a reference are skipped and counted (Natural Reasoning has some).

``--split`` names the split of every converted row (default: from the input's file name:
``test`` -> test, ``dev``/``val`` -> validation, else train); ``--append`` adds to an existing
JSONL/CSV output, so one prepared file can hold several splits. An existing output is otherwise
replaced only with ``--overwrite``; the input is never an output; the file is written under a
temporary name and renamed into place, so an interrupted convert leaves the old output intact.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from maestro_lit import atomic_io
from maestro_lit.data.prepared import Row, TaskDataError, raw_rows
from maestro_lit.data.task_specs import TASKS
from maestro_lit.data.templates import LETTERS, format_instruction, lettered, question_prompt, translation_prompt

Converter = Callable[[Row, str, argparse.Namespace], "Row | None"]
LANGUAGES = {
    "ca": "Catalan",
    "de": "German",
    "el": "Greek",
    "en": "English",
    "eo": "Esperanto",
    "es": "Spanish",
    "fi": "Finnish",
    "fr": "French",
    "hu": "Hungarian",
    "it": "Italian",
    "nl": "Dutch",
    "no": "Norwegian",
    "pl": "Polish",
    "pt": "Portuguese",
    "ru": "Russian",
    "sv": "Swedish",
}


def _text(row: Row, name: str, where: str) -> str:
    value = row.get(name)
    if not isinstance(value, str) or not value.strip():
        raise TaskDataError(f"{where}: missing or empty field {name!r} (fields: {sorted(row)})")
    return value.strip()


def _choices(row: Row, name: str, where: str) -> list[str]:
    value = row.get(name)
    if not isinstance(value, list) or len(value) < 2 or not all(isinstance(v, str) for v in value):
        raise TaskDataError(f"{where}: field {name!r} must be a list of at least two strings")
    return value


def _label_index(choices: list[str], label: str, name: str, where: str) -> int:
    if label not in choices:
        raise TaskDataError(f"{where}: {name} {label!r} is not one of the choices")
    return choices.index(label)


def emobench(row: Row, where: str, args: argparse.Namespace) -> Row:
    scenario, subject = _text(row, "scenario", where), _text(row, "subject", where)
    if "emotion_choices" in row:  # EU: emotion, then its cause
        emotions, causes = _choices(row, "emotion_choices", where), _choices(row, "cause_choices", where)
        e = _label_index(emotions, _text(row, "emotion_label", where), "emotion_label", where)
        c = _label_index(causes, _text(row, "cause_label", where), "cause_label", where)
        question = (
            f"{scenario}\n What emotion is {subject} feeling, and why? "
            "First select an emotion, then choose its cause.\n\n"
            "Emotion Options:\n" + "\n".join(lettered(emotions)) + "\n\nCause Options:\n" + "\n".join(lettered(causes))
        )
        hint = "Emotion: [option letter]: [option text]\nCause: [option letter]: [option text]"
        reference = f"Emotion: {LETTERS[e]}: {emotions[e]}, Cause: {LETTERS[c]}: {causes[c]}"
        kind = "emobench_eu"
    else:  # EA: the most effective action
        choices = _choices(row, "choices", where)
        a = _label_index(choices, _text(row, "label", where), "label", where)
        question = (
            f"{scenario}\n What would be the best course of action for {subject} in this situation? "
            "Please select the most appropriate option below.\n\nAction Options:\n" + "\n".join(lettered(choices))
        )
        hint, reference, kind = "[option letter]: [option text]", f"{LETTERS[a]}: {choices[a]}", "emobench_ea"
    return {
        "prompt": question_prompt(question, hint, "Your reasoning process."),
        "reference": reference,
        "category": kind,
    }


_TOM_FIELDS = {
    "en": ("STORY", "QUESTION", ["OPTION-A", "OPTION-B", "OPTION-C", "OPTION-D"]),
    "zh": ("故事", "问题", ["选项A", "选项B", "选项C", "选项D"]),
}


def tombench(row: Row, where: str, args: argparse.Namespace) -> Row:
    story_key, question_key, option_keys = _TOM_FIELDS[args.language]
    options = [str(row[k]).strip() for k in option_keys if row.get(k) not in (None, "")]
    if len(options) < 2:
        raise TaskDataError(f"{where}: fewer than two options among {option_keys}")
    answer_key = next((k for k in row if k.replace("\n", " ").split(" ")[-1] == "ANSWER" or k == "答案"), None)
    answer = str(row.get(answer_key) or "").strip().upper()[:1]
    if answer not in LETTERS[: len(options)]:
        raise TaskDataError(f"{where}: answer letter {answer!r} does not name one of {len(options)} options")
    question = f"{_text(row, story_key, where)}\n\n{_text(row, question_key, where)}\n\nOptions:\n" + "\n".join(
        lettered(options, ". ")
    )
    ability = next((str(v) for k, v in row.items() if "ABILITY" in k), "")
    reference = f"{answer}. {options[LETTERS.index(answer)]}"
    return {
        "prompt": question_prompt(question),
        "reference": reference,
        "category": ability.split(":")[0].strip() or "tombench",
    }


def ss_gen(row: Row, where: str, args: argparse.Namespace) -> Row:
    title, chapter, explanation = (
        _text(row, "title", where),
        _text(row, "chapter", where),
        _text(row, "explanation", where),
    )
    question = (
        f"Write a social story for a child with autism spectrum disorder.\nTitle: {title}\nTheme: {chapter} "
        f"(this theme {explanation.rstrip('.')}).\n"
        "Use simple, positive, first-person sentences that describe the situation, "
        "what others may think or feel, and what the child can do."
    )
    return {"prompt": question_prompt(question), "reference": _text(row, "story_content", where), "category": chapter}


def opus_books(row: Row, where: str, args: argparse.Namespace) -> Row:
    pair = row.get("translation")
    if not isinstance(pair, dict) or len(pair) < 2:
        raise TaskDataError(f"{where}: field 'translation' must be a dict of at least two languages")
    keys = list(pair)
    source = args.source_lang or keys[0]
    target = args.target_lang or next(k for k in keys if k != source)
    for code in (source, target):
        if code not in pair:
            raise TaskDataError(f"{where}: language {code!r} not in the translation dict (has {keys})")
    names = [LANGUAGES.get(code, code) for code in (source, target)]
    text, reference = _text(pair, source, where), _text(pair, target, where)
    return {"prompt": translation_prompt(text, *names), "reference": reference, "category": f"{source}-{target}"}


def _first(row: Row, names: Sequence[str]) -> Any:
    return next((row[n] for n in names if row.get(n) not in (None, "")), None)


def question_answer(row: Row, where: str, args: argparse.Namespace) -> Row | None:
    question = _first(
        row, [args.question_field] if args.question_field else ["question", "prompt", "problem", "instruction"]
    )
    if not isinstance(question, str) or not question.strip():
        raise TaskDataError(f"{where}: no question field (fields: {sorted(row)}); name it with --question-field")
    answer = _first(
        row, [args.answer_field] if args.answer_field else ["reference_answer", "answer", "final_answer", "reference"]
    )
    if isinstance(answer, list):
        answer = answer[0] if answer else None
    if answer is None or not str(answer).strip():
        return None  # skipped and counted
    return {"prompt": question_prompt(question.strip()), "reference": str(answer).strip()}


CONVERTERS: dict[str, Converter] = {
    "emobench": emobench,
    "tombench": tombench,
    "ss_gen": ss_gen,
    "opus_books": opus_books,
    "natural_reasoning": question_answer,
    "general_thoughts": question_answer,
    "webinstruct": question_answer,
}


def default_split(path: str) -> str:
    stem = Path(path).stem.lower()
    if "test" in stem:
        return "test"
    if "dev" in stem or "val" in stem:
        return "validation"
    return "train"


def convert_rows(task: str, source: str, args: argparse.Namespace) -> tuple[list[Row], int]:
    """Converted rows and the number skipped for a missing reference."""
    convert, split = CONVERTERS[task], args.split or default_split(source)
    out, skipped = [], 0
    for number, row in raw_rows(source):
        converted = convert(row, f"{source}:{number}", args)
        if converted is None:
            skipped += 1
            continue
        out.append(
            {
                "prompt": converted["prompt"],
                "reference": converted["reference"],
                "split": split,
                "task": task,
                "category": converted.get("category") or task,
            }
        )
    return out, skipped


COLUMNS = ["prompt", "reference", "split", "task", "category"]


def write_rows(rows: list[Row], output: str, append: bool = False) -> None:
    """Write (or, with ``append``, extend) ``output`` atomically: the new content goes to a temporary name
    beside it and is renamed into place, so a failure leaves the previous file as it was (``atomic_io``)."""
    path = Path(output)
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv", ".jsonl"):
        raise ValueError(f"{output}: output must end in .jsonl, .csv or .parquet")
    if append and suffix == ".parquet":
        raise ValueError("--append works with .jsonl and .csv outputs, not .parquet")
    existing = append and path.is_file()
    with atomic_io.atomic_path(path) as tmp:
        if existing:
            shutil.copyfile(path, tmp)
        if suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist(rows), tmp)
        elif suffix == ".csv":
            with tmp.open("a", encoding="utf-8", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=COLUMNS)
                if not existing:
                    writer.writeheader()
                writer.writerows(rows)
        else:
            with tmp.open("a", encoding="utf-8") as fh:
                fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m maestro_lit convert", description=__doc__.split("\n")[0])
    parser.add_argument("task", choices=sorted(TASKS))
    parser.add_argument("input", help="the task's original release file (JSONL, CSV or Parquet)")
    parser.add_argument("output", help="prepared file to write (.jsonl, .csv or .parquet)")
    parser.add_argument("--split", help="split of the converted rows (default: from the input's name)")
    parser.add_argument("--append", action="store_true", help="append to an existing .jsonl/.csv output")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output (never the input)")
    parser.add_argument("--language", choices=["en", "zh"], default="en", help="ToMBench: English or Chinese fields")
    parser.add_argument("--source-lang", help="OPUS-Books: source language code (default: first key)")
    parser.add_argument("--target-lang", help="OPUS-Books: target language code (default: the other key)")
    parser.add_argument("--question-field", help="question/reference tasks: the question's field name")
    parser.add_argument("--answer-field", help="question/reference tasks: the reference answer's field name")
    return parser


def check_output_path(args: argparse.Namespace) -> None:
    """The output is never the input; an existing one is replaced only with ``--overwrite`` or extended with
    ``--append``, and never through a symlink (``--overwrite`` replaces the link itself, not its target)."""
    atomic_io.check_output(args.output, [args.input], overwrite=args.overwrite or args.append)
    if args.append and Path(args.output).is_symlink():
        raise atomic_io.OutputError(
            f"output {args.output} is a symlink: --append would replace the link, not extend "
            f"{os.path.realpath(args.output)}; append to that file instead"
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_output_path(args)
    rows, skipped = convert_rows(args.task, args.input, args)
    if not rows:
        raise TaskDataError(f"{args.input}: nothing to convert ({skipped} rows without a reference)")
    write_rows(rows, args.output, args.append)
    note = f", skipped {skipped} without a reference" if skipped else ""
    print(f"{args.task}: wrote {len(rows)} rows (split {rows[0]['split']}) to {args.output}{note}")
    return 0


__all__ = ["CONVERTERS", "convert_rows", "format_instruction", "main", "write_rows"]

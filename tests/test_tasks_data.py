"""Prepared task files (prompt, reference, split) in CSV/JSONL/Parquet, split selection, the DataModule, the
shipped samples."""

import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from maestro_lit.data.prepared import TaskDataError, read_prepared, split_counts
from maestro_lit.data.prompts import DataFileError, PromptDataModule, iter_rows
from maestro_lit.data.task_specs import TASKS
from maestro_lit.evals.paper.metrics import reference_letters

ROWS = [
    {"prompt": "\nQuestion: one?", "reference": "1", "split": "train"},
    {"prompt": "\nQuestion: two?", "reference": "2", "split": "test"},
    {"prompt": "\nQuestion: three?", "reference": "3", "split": "train"},
    {"prompt": "\nQuestion: four?", "reference": "4", "split": "validation"},
]


def write(path, rows):
    if path.suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    elif path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_reads_each_format_and_selects_splits(tmp_path, suffix):
    source = write(tmp_path / f"nr{suffix}", ROWS)
    train = read_prepared(source, "train", task="natural_reasoning")
    assert [r["reference"] for _, r in train] == ["1", "3"]
    assert all(r["task"] == r["category"] == "natural_reasoning" for _, r in train)
    assert [r["reference"] for _, r in read_prepared(source, "test")] == ["2"]
    assert split_counts(source) == {"train": 2, "test": 1, "validation": 1}
    where, _ = read_prepared(source, "validation")[0]
    assert where.startswith(source + ":")


def test_rows_without_split_belong_to_every_split_and_own_category_wins(tmp_path):
    source = write(tmp_path / "p.jsonl", [{"prompt": "a", "reference": "x", "category": "mine"}])
    for split in ("train", "test"):
        [(_, row)] = read_prepared(source, split, task="emobench")
        assert row["category"] == "mine" and row["task"] == "emobench"


def test_bad_rows_and_empty_split_named(tmp_path):
    source = write(tmp_path / "bad.csv", [{"prompt": "", "reference": "x", "split": "train"}])
    with pytest.raises(TaskDataError, match=r"bad.csv:2: 'prompt' must be a non-empty string"):
        read_prepared(source, "train")
    good = write(tmp_path / "good.csv", ROWS)
    with pytest.raises(TaskDataError, match="no rows in split 'dev'"):
        read_prepared(good, "dev")
    with pytest.raises(TaskDataError, match="does not exist"):
        read_prepared(str(tmp_path / "missing.csv"), "train")


def test_datamodule_trains_on_one_split_and_validates_on_another(tmp_path):
    source = write(tmp_path / "tom.csv", ROWS)
    module = PromptDataModule(train_path=source, val_path=source, val_split="test", batch_size=8, task="tombench")
    module.setup("fit")
    [train] = list(module.train_dataloader())
    [val] = list(module.val_dataloader())
    assert sorted(train["reference"]) == ["1", "3"] and val["reference"] == ["2"]
    assert train["task"] == ["tombench", "tombench"] and val["category"] == ["tombench"]
    # Without a task name, rows are passed through untouched (the quickstart prompts keep their categories).
    assert "task" not in next(iter_rows(source))[1]
    with pytest.raises(DataFileError, match="holds no rows"):
        list(iter_rows(source, "dev"))


def test_shipped_samples_hold_train_and_test_items():
    for name, spec in TASKS.items():
        train, test = read_prepared(str(spec.sample), "train", name), read_prepared(str(spec.sample), "test", name)
        assert (len(train), len(test)) == (8, 4), name
        for _, row in train + test:
            assert row["prompt"].rstrip().endswith("</answer>") and row["reference"].strip()
        letters = [reference_letters(r["reference"], r["prompt"]) for _, r in train + test]
        if name in ("emobench", "tombench"):
            assert all(letters), name  # every item is multiple choice
        if name in ("natural_reasoning", "ss_gen", "opus_books"):
            assert not any(letters), name


def test_csv_quoted_newlines_bom_and_ragged_rows(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text('\ufeffprompt,reference\n"a passage\nover, two lines",r1\n\nplain,r2\n', encoding="utf-8")
    rows = read_prepared(str(good))
    assert [(where.rsplit(":", 1)[1], row["prompt"]) for where, row in rows] == [
        ("2", "a passage\nover, two lines"),
        ("5", "plain"),
    ]
    short = tmp_path / "short.csv"
    short.write_text("prompt,reference,split\nfine,r,train\nno reference\n", encoding="utf-8")
    with pytest.raises(TaskDataError, match=r"short.csv:3: 1 fields, but the header has 3"):
        read_prepared(str(short))
    closed_late = tmp_path / "late.csv"
    closed_late.write_text('prompt,reference\n"opens here,r\nnext,r\n"quoted",r\n', encoding="utf-8")
    with pytest.raises(TaskDataError, match=r"late.csv:2: unbalanced quotes in the field that opens on this line"):
        read_prepared(str(closed_late))
    old_mac = tmp_path / "cr.csv"
    old_mac.write_bytes(b'prompt,reference\rfirst,r\r"two\rlines",r\rlast,r\r')
    assert [(w.rsplit(":", 1)[1], r["prompt"]) for w, r in read_prepared(str(old_mac))] == [
        ("2", "first"),
        ("3", "two\rlines"),
        ("5", "last"),
    ]

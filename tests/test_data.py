import json

import pytest

from maestro_lit.data.prompts import (
    POSITION_KEY,
    DataFileError,
    PromptDataModule,
    PromptStream,
    collate_columns,
    iter_rows,
)
from maestro_lit.paths import TRAIN_PROMPTS, VAL_PROMPTS


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_shipped_prompts_have_three_categories_and_disjoint_splits():
    train = [row for _, row in iter_rows(str(TRAIN_PROMPTS))]
    val = [row for _, row in iter_rows(str(VAL_PROMPTS))]
    assert len(train) >= 300 and len(val) >= 30
    assert {r["category"] for r in train} == {"creative", "factual", "concise"}
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in val}


def test_stream_reads_jsonl_and_parquet_with_extra_columns(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"prompt": f"p{i}", "category": "c", "reference": f"r{i}", "extra": i} for i in range(5)]
    jsonl = _write(tmp_path / "p.jsonl", [json.dumps(r) for r in rows])
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "p.parquet")
    for source in (jsonl, str(tmp_path / "p.parquet")):
        streamed = list(PromptStream(source))
        assert [{k: v for k, v in r.items() if k != POSITION_KEY} for r in streamed] == rows
        assert [r[POSITION_KEY] for r in streamed] == [(0, i) for i in range(1, 6)]
    batch = collate_columns([{"prompt": "a", "x": 1, POSITION_KEY: (0, 1)}, {"prompt": "b", POSITION_KEY: (0, 2)}])
    assert batch == {"prompt": ["a", "b"], "x": [1, None], POSITION_KEY: (0, 2)}


def test_resume_at_replays_the_epoch_order_and_skips_consumed_rows(tmp_path):
    source = _write(tmp_path / "p.jsonl", [json.dumps({"prompt": f"p{i}"}) for i in range(30)])
    straight = PromptStream(source, shuffle=True, buffer_size=8, seed=3)
    next(iter(straight))  # epoch 0
    epoch1 = [r["prompt"] for r in straight]
    resumed = PromptStream(source, shuffle=True, buffer_size=8, seed=3)
    resumed.resume_at(epoch=1, rows=11)
    assert [r["prompt"] for r in resumed] == epoch1[11:]
    assert [r["prompt"] for r in resumed][:3] != epoch1[11:14]  # the next pass is epoch 2


def test_shuffle_is_a_permutation_and_changes_per_epoch(tmp_path):
    source = _write(tmp_path / "p.jsonl", [json.dumps({"prompt": f"p{i}"}) for i in range(50)])
    stream = PromptStream(source, shuffle=True, buffer_size=16, seed=1)
    first, second = [r["prompt"] for r in stream], [r["prompt"] for r in stream]
    assert sorted(first) == sorted(f"p{i}" for i in range(50))
    assert first != second and first != [f"p{i}" for i in range(50)]
    again = [r["prompt"] for r in PromptStream(source, shuffle=True, buffer_size=16, seed=1)]
    assert again == first  # same seed, same order


@pytest.mark.parametrize(
    "content, message",
    [
        (['{"prompt": "ok"}', '{"prompt": '], r"p.jsonl:2: malformed JSON"),
        (['{"prompt": "ok"}', '{"text": "no prompt"}'], r"p.jsonl:2: row has no 'prompt'"),
        (['{"prompt": 3}'], r"p.jsonl:1: 'prompt' must be a non-empty string"),
        ([""], "holds no rows"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, content, message):
    source = _write(tmp_path / "p.jsonl", content)
    with pytest.raises(DataFileError, match=message):
        list(PromptStream(source))


def test_non_utf8_and_missing_files(tmp_path):
    bad = tmp_path / "p.jsonl"
    bad.write_bytes(b'{"prompt": "ok"}\n{"prompt": "\xff"}\n')
    with pytest.raises(DataFileError, match=r"p.jsonl:2: not valid UTF-8"):
        list(PromptStream(str(bad)))
    module = PromptDataModule(train_path=str(tmp_path / "missing.jsonl"))
    with pytest.raises(DataFileError, match="missing.jsonl does not exist"):
        module.setup("fit")


def test_datamodule_strips_the_position_and_keeps_the_trained_one():
    from types import SimpleNamespace

    datamodule = PromptDataModule()
    datamodule.trainer = SimpleNamespace(training=True)
    batch = datamodule.on_before_batch_transfer({"prompt": ["a"], POSITION_KEY: (0, 3)}, 0)
    assert batch == {"prompt": ["a"]} and datamodule.state_dict() == {"epoch": 0, "rows": 3}
    datamodule.trainer = SimpleNamespace(training=False)  # a validation batch: stripped, not remembered
    assert datamodule.on_before_batch_transfer({"prompt": ["b"], POSITION_KEY: (0, 9)}, 0) == {"prompt": ["b"]}
    assert datamodule.state_dict() == {"epoch": 0, "rows": 3}

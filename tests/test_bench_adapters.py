"""Adapters: shipped samples load, generation is batched per turn, bad files fail by name."""

import json

import pytest

from maestro_lit.evals.io import BenchmarkDataError
from maestro_lit.evals.judges.base import Judge
from maestro_lit.evals.suite.alpaca_eval import AlpacaEval
from maestro_lit.evals.suite.arena_hard import ArenaHard
from maestro_lit.evals.suite.creative_writing import CreativeWriting
from maestro_lit.evals.suite.eq_bench import EQBench
from maestro_lit.evals.suite.ifeval import IFEval
from maestro_lit.evals.suite.mt_bench import MTBench
from maestro_lit.evals.suite.truthfulqa import TruthfulQA


class RecordingGenerate:
    """Fake ``generate_chat``: records every batch, answers from a function of the conversation."""

    def __init__(self, answer=lambda conv: "answer to " + conv[-1]["content"][:20]):
        self.calls, self.answer = [], answer

    def __call__(self, conversations, max_new_tokens):
        self.calls.append(([list(c) for c in conversations], max_new_tokens))
        return [self.answer(c) for c in conversations]


class FakeJudge(Judge):
    """Grades by answer length, compares by a fixed verdict; ``None`` for marked answers."""

    tag = "fake"

    def __init__(self):
        self.grade_calls, self.compare_calls = [], []

    def grade(self, requests, prompt):
        self.grade_calls.append((list(requests), prompt))
        return [None if "FAIL" in r.answer else 5.0 for r in requests]

    def compare(self, requests, prompt):
        self.compare_calls.append((list(requests), prompt))
        return [None if "FAIL" in r.answer else (1.0 if "good" in r.answer else 0.5) for r in requests]


def test_mt_bench_two_turn_conversations():
    gen = RecordingGenerate()
    judge = FakeJudge()
    result = MTBench(judge=judge, limit=3).evaluate(gen, max_new_tokens=17)
    assert len(gen.calls) == 2  # one batch per turn
    (turn1, n1), (turn2, n2) = gen.calls
    assert n1 == n2 == 17
    items = MTBench().items()[:3]
    for it, conv1, conv2 in zip(items, turn1, turn2):
        assert conv1 == [{"role": "user", "content": it.turns[0]}]
        assert conv2 == [
            {"role": "user", "content": it.turns[0]},
            {"role": "assistant", "content": "answer to " + it.turns[0][:20]},
            {"role": "user", "content": it.turns[1]},
        ]
    assert result.metrics["score_fake"] == 5.0 and result.failed == 0
    # Math item (index 2) is graded with the reference-guided prompt and its reference.
    names = {p.name for _, p in judge.grade_calls}
    assert {"single-v1", "single-v1-multi-turn", "single-math-v1", "single-math-v1-multi-turn"} == names
    math_requests = [r for reqs, p in judge.grade_calls if p.name == "single-math-v1" for r in reqs]
    assert math_requests[0].reference.startswith("12 apples")
    for requests, template in judge.grade_calls:  # every template's fields are all provided
        assert "12 apples" in template.user.format(**requests[0].fields) or template.name.startswith("single-v1")


def test_mt_bench_unparseable_judge_counts_failed():
    gen = RecordingGenerate(lambda conv: "FAIL" if len(conv) == 3 else "fine")
    result = MTBench(judge=FakeJudge(), limit=2).evaluate(gen)
    assert result.failed == 2 and result.metrics["failed"] == 2.0
    assert result.metrics["score_turn1_fake"] == 5.0


def test_pairwise_adapters_aggregate_ties():
    answers = iter(["good", "meh", "FAIL", "meh"] * 10)
    gen = RecordingGenerate(lambda conv: next(answers))
    result = AlpacaEval(judge=FakeJudge(), limit=4).evaluate(gen)
    assert result.metrics["win_rate_fake"] == pytest.approx(100 * (1 + 0.5 + 0.5) / 3)
    assert result.failed == 1
    judge = FakeJudge()
    arena = ArenaHard(judge=judge, limit=2).evaluate(RecordingGenerate(lambda c: "good"))
    assert arena.metrics["win_rate_fake"] == 100.0
    requests = judge.compare_calls[0][0]
    assert [r.model_first for r in requests] == [False, False, True, True]  # both orders
    assert requests[0].baseline.startswith("def largest")


def test_eq_bench_scores_written_numbers():
    def answer(conv):
        return "Proud: 8\nAnnoyed: 3\nEmbarrassed: 1\nSad: 0" if "Mia" in conv[0]["content"] else "no idea"

    result = EQBench(limit=2).evaluate(RecordingGenerate(answer))
    assert result.failed == 1
    assert result.metrics["score"] == pytest.approx(100.0)


def test_ifeval_metrics_strict_and_loose():
    def answer(conv):
        p = conv[0]["content"]
        if "lowercase" in p:
            return "Sure:\nall lower here"  # loose only
        if "commas" in p:
            return "Boil it for nine minutes."
        return "Nope, Nope."

    result = IFEval(limit=5).evaluate(RecordingGenerate(answer))
    m = result.metrics
    assert m["prompt_strict"] == pytest.approx(1 / 5) and m["prompt_loose"] == pytest.approx(2 / 5)
    assert m["inst_strict"] == pytest.approx(1 / 5)


def test_creative_writing_diversity_and_grades():
    judge = FakeJudge()
    result = CreativeWriting(judge=judge, limit=2).evaluate(RecordingGenerate(lambda c: "the cat the cat the cat"))
    assert result.metrics["score_fake"] == 5.0
    assert result.metrics["distinct_1"] == pytest.approx(2 / 6)
    assert result.metrics["redundancy"] == pytest.approx(2 / 4)
    assert len(judge.grade_calls[0][0]) == 6  # 2 items x 3 criteria, one judge call


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_missing_file_named(tmp_path):
    missing = str(tmp_path / "nope.jsonl")
    with pytest.raises(BenchmarkDataError, match="nope.jsonl: benchmark file not found"):
        IFEval(path=missing).items()


MALFORMED = [
    (
        IFEval,
        "bad.jsonl",
        '{"prompt": "a", "instruction_id_list": [], "kwargs": []}\n{"prompt": \n',
        r"bad.jsonl:2: malformed JSON",
    ),
    (IFEval, "bad.jsonl", '{"instruction_id_list": [], "kwargs": []}\n', r"bad.jsonl:1: missing field 'prompt'"),
    (
        IFEval,
        "bad.jsonl",
        '{"prompt": "x", "instruction_id_list": ["language:response_language", "foo:bar"], "kwargs": [{}, {}]}\n',
        r"foo:bar, language:response_language",
    ),
    (
        IFEval,
        "bad.jsonl",
        '{"prompt": "x", "instruction_id_list": ["length_constraints:number_words"], "kwargs": [{"num_words": 3}]}\n',
        r"bad.jsonl:1: field 'kwargs'",
    ),
    (MTBench, "q.jsonl", '{"question_id": 1, "turns": ["only one"]}\n', r"q.jsonl:1: field 'turns'"),
    (MTBench, "q.jsonl", '{"question_id": 1}\n', r"q.jsonl:1: missing field 'turns'"),
    (
        AlpacaEval,
        "a.json",
        '[{"instruction": "hi", "output": "hello"}, {"instruction": "x"}]',
        r"a.json\[1\]: missing field 'output'",
    ),
    (AlpacaEval, "a.json", '[{"instruction": "hi",\n "output": }]', r"a.json:2: malformed JSON"),
    (
        ArenaHard,
        "q.jsonl",
        '{"question_id": "q001", "turns": [{"content": "hi"}]}\n{"question_id": "zzz", "turns": [{"content": "x"}]}\n',
        r"q.jsonl:2: no baseline answer for question_id 'zzz'",
    ),
    (ArenaHard, "q.jsonl", '{"question_id": "q001", "turns": []}\n', r"q.jsonl:1: missing field 'turns\[0\].content'"),
    (
        CreativeWriting,
        "w.jsonl",
        '{"query": "write", "checklist": [{"name": "x"}]}\n',
        r"w.jsonl:1: missing field 'checklist\[0\].criteria_description'",
    ),
    (
        EQBench,
        "e.json",
        json.dumps({"1": {"prompt": "p", "reference_answer_fullscale": {"emotion1": "a", "emotion1_score": 1}}}),
        r"e.json\['1'\]: missing field 'reference_answer_fullscale.emotion2'",
    ),
    (
        TruthfulQA,
        "t.csv",
        "Question,Best Answer,Correct Answers\nIs it?,Yes,Yes\n",
        r"t.csv:2: missing field 'Incorrect Answers'",
    ),
    (
        TruthfulQA,
        "t.jsonl",
        '{"question": "q", "correct_answers": ["a"]}\n',
        r"t.jsonl:1: missing field 'incorrect_answers'",
    ),
]


@pytest.mark.parametrize("cls,name,text,pattern", MALFORMED)
def test_malformed_files_fail_by_name(tmp_path, cls, name, text, pattern):
    with pytest.raises(BenchmarkDataError, match=pattern):
        cls(path=_write(tmp_path, name, text)).items()


def test_arena_hard_bad_baseline_file(tmp_path):
    baseline = _write(tmp_path, "base.jsonl", '{"question_id": "q001", "choices": []}\n')
    with pytest.raises(BenchmarkDataError, match=r"base.jsonl:1: missing field 'choices\[0\].turns\[0\].content'"):
        ArenaHard(baseline_path=baseline).items()


def test_all_shipped_samples_load():
    sizes = {
        cls.__name__: len(cls().items())
        for cls in (AlpacaEval, ArenaHard, MTBench, CreativeWriting, EQBench, TruthfulQA, IFEval)
    }
    assert all(5 <= n <= 30 for n in sizes.values()), sizes

"""The 3-vote protocol against a fake OpenAI-compatible judge on 127.0.0.1, the proxy stand-in, the local HF judge."""

import threading

import pytest
from fake_openai import FakeOpenAIServer

from maestro_lit.evals.judges.vote_prompts import JudgeItem, parse_vote, vote_messages
from maestro_lit.evals.judges.votes import HttpVoteJudge, LocalVoteJudge, ProxyVoteJudge, Verdict, pair_vote, summarise

# Replies per (item answer, variant): variant 0 = reference first, 1 = candidate first, 2 = "First state ...".
REPLIES = {
    "ANS1": ["Same result. [[YES]]", "Consistent. [[YES]]", "It differs. [[NO]]"],  # 2-1: favourable
    "ANS2": ["No. [[NO]]", "I cannot tell.", "Agrees. [[YES]]"],  # 1-1 with one unparsed: not favourable
    "ANS3": ["hmm", "The format [[YES]] or [[NO]]... I decline", "???"],  # last tag counts: vote 2 parses as NO
    "ANS4": ["garbage", "more garbage", "Verdict: yes"],  # nothing parsed: undecided
    "ANS5": ["[[YES]]", "[[yes]]", "[[NO]]"],  # case-insensitive tags: favourable
}


def variant_of(text):
    if text.startswith("First state"):
        return 2
    return 0 if text.index("[Reference answer]") < text.index("[Candidate answer]") else 1


def fake_judge(fail_first: int = 0) -> FakeOpenAIServer:
    """Answers from ``REPLIES`` by item and prompt variant; the first ``fail_first`` requests get 503."""
    lock, failures = threading.Lock(), [fail_first]

    def reply(path, headers, body):
        with lock:
            failing = failures[0] > 0
            failures[0] -= 1
        user = body["messages"][1]["content"]
        if failing:
            return 503, "busy"
        if "[Response A]" in user:  # pairwise: always prefers slot A
            return 200, "A reads better. [[A]]"
        answer = next(a for a in REPLIES if a in user)
        return 200, REPLIES[answer][variant_of(user)]

    return FakeOpenAIServer(reply)


@pytest.fixture
def server():
    s = fake_judge(fail_first=2)
    yield s
    s.close()


def test_three_vote_majority_unparsed_and_preference(server):
    judge = HttpVoteJudge(server.url, "judge-model", backoff_s=0.01, max_workers=4)
    items = [JudgeItem(f"Question {i}?", "reference text", f"ANS{i}") for i in range(1, 6)]
    verdicts = judge.verdicts(items)
    assert [v.votes for v in verdicts] == [
        (True, True, False),
        (False, None, True),
        (None, False, None),
        (None, None, None),
        (True, True, False),
    ]
    assert [v.favourable for v in verdicts] == [True, False, False, None, True]
    summary = summarise(verdicts)
    assert summary.preference == pytest.approx(100 * 2 / 4)  # 2 favourable of 4 decided; ANS4 is undecided
    assert summary.unparsed_share == pytest.approx(6 / 15) and summary.undecided == 1
    assert len(server.requests) == 15 + 2  # the two 503s were retried
    assert all(r["model"] == "judge-model" and r["temperature"] == 0.0 for r in server.bodies)


def test_pairwise_votes_ask_both_orders(server):
    judge = HttpVoteJudge(server.url, "m", backoff_s=0.01)
    item = JudgeItem("Translate: la mer", "the sea", "MODEL OUTPUT", judging="pairwise", category="multilingual")
    [verdict] = judge.verdicts([item])
    # The judge always answers [[A]]: each vote asks both orders, they disagree, so every vote is a tie.
    assert verdict.votes == (0.5, 0.5, 0.5) and verdict.outcome == 0.5 and not verdict.favourable
    slots = sorted({r["messages"][1]["content"] for r in server.bodies})  # the retried 503s repeat a prompt
    assert len(slots) == 6  # 3 variants x 2 orders
    assert sum(s.index("MODEL OUTPUT") < s.index("the sea") for s in slots) == 3
    assert "faithful to the source meaning" in slots[0]


def test_pair_votes_and_item_outcomes():
    assert [pair_vote(o) for o in ([True, True], [False, False], [True, False], [False, True])] == [1, 0, 0.5, 0.5]
    assert pair_vote([True, None]) is None and pair_vote([None]) is None and pair_vote([False]) is False
    assert Verdict((True, 0.5, 0.5), pairwise=True).outcome == 1.0
    assert Verdict((True, False, 0.5), pairwise=True).outcome == 0.5  # balanced: a tie, half a win
    assert Verdict((True, False, None)).outcome == 0.0  # a reference 1-1 split is not favourable
    assert Verdict((0.5, None, 0.5), pairwise=True).outcome == 0.5
    summary = summarise([Verdict((0.5,) * 3, True), Verdict((True,) * 3, True), Verdict((None,) * 3, True)])
    assert summary.preference == pytest.approx(75.0) and summary.undecided == 1


def test_unreachable_judge_gives_undecided_items_not_errors():
    judge = HttpVoteJudge("http://127.0.0.1:9/v1", "m", max_retries=1, backoff_s=0.01, timeout_s=0.5)
    verdicts = judge.verdicts([JudgeItem("q", "r", "a")])
    assert verdicts[0].votes == (None, None, None)
    assert summarise(verdicts).undecided == 1


def test_samples_mode_needs_temperature():
    with pytest.raises(ValueError, match="temperature > 0"):
        HttpVoteJudge("http://127.0.0.1:9/v1", "m", vote_mode="samples")


def test_parse_vote_and_messages():
    item = JudgeItem("q", "ref", "ans")
    assert parse_vote("first [[NO]] then [[YES]]", item) is True
    assert parse_vote("[[A]]", item) is None  # wrong tag kind for a reference item
    assert parse_vote(None, item) is None
    pair = JudgeItem("q", "ref", "ans", judging="pairwise")
    assert parse_vote("[[A]]", pair, model_first=True) is True and parse_vote("[[A]]", pair, model_first=False) is False
    first, second = (vote_messages(pair, 1, model_first=m)[1]["content"] for m in (True, False))
    assert first.index("ans") < first.index("ref") and second.index("ref") < second.index("ans")
    long = JudgeItem("q", "r" * 10, "x" * 9000)
    assert "x" * 6000 in vote_messages(long, 0)[1]["content"] and "x" * 6001 not in vote_messages(long, 0)[1]["content"]


def test_majority_and_summary_edge_cases():
    assert Verdict((True, None, None)).favourable is True
    assert Verdict((False, False, True)).favourable is False
    empty = summarise([])
    assert empty.undecided == 0 and empty.preference != empty.preference  # NaN


def test_proxy_votes_by_letters_and_overlap():
    judge = ProxyVoteJudge(threshold=0.5)
    prompt = "Which?\n\nOptions:\nA. one\nB. two"
    items = [
        JudgeItem(prompt, "B. two", "B. two"),
        JudgeItem(prompt, "B. two", "A. one"),
        JudgeItem("Translate", "the old man smiled", "the old man smiled and said nothing"),
        JudgeItem("Translate", "the old man smiled", "completely different words here"),
    ]
    votes = [v.votes for v in judge.verdicts(items)]
    assert votes[0] == (True, True, True) and votes[1] == (False, False, False)
    assert votes[2] == (True, True, True) and votes[3] == (False, False, False)
    assert judge.metric("preference") == "preference_proxy"


def test_local_hf_judge_loads_once_and_counts_garbage_as_unparsed(tmp_path, monkeypatch):
    from transformers import LlamaConfig, LlamaForCausalLM

    import maestro_lit.evals.judges.votes as judging
    from maestro_lit.tiny import build_tokenizer

    tokenizer = build_tokenizer(["judge the answer yes no consistent reference question"] * 20, vocab_size=300)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=4096,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loads = []
    original = judging.LocalVoteJudge.load

    def counting_load(self):
        loads.append(judging._LOCAL.get((self.name_or_path, self.dtype)) is None)
        return original(self)

    monkeypatch.setattr(judging.LocalVoteJudge, "load", counting_load)
    monkeypatch.setattr(judging, "_LOCAL", {})
    judge = LocalVoteJudge(str(tmp_path), dtype="float32", max_new_tokens=3, batch_size=4)
    items = [JudgeItem("q1", "r1", "a1"), JudgeItem("q2", "r2", "a2", judging="pairwise", category="creative")]
    first = judge.verdicts(items)
    second = LocalVoteJudge(str(tmp_path), dtype="float32", max_new_tokens=3).verdicts(items[:1])
    assert loads == [True, False]  # the weights were read once, then shared
    assert len(first) == 2 and len(second) == 1
    replies = judge.replies([vote_messages(items[0], 0)])
    assert len(replies) == 1 and isinstance(replies[0], str)  # random weights answer, just not with a verdict
    assert all(v is None for verdict in first for v in verdict.votes)

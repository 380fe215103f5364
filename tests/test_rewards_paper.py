"""The paper's fmt, ent and len rewards (docs/paper.md#rewards) on hand-made inputs."""

import math

import pytest
import torch

from maestro_lit.rewards.base import RewardComponent, RewardError, RewardInputs, call_component, score_components
from maestro_lit.rewards.entropy import SequenceEntropy, TokenEntropy
from maestro_lit.rewards.format import FormatReward
from maestro_lit.rewards.length_penalty import NoverEfficiency, TokenBudget, efficiency_within_groups
from maestro_lit.rewards.nover_format import ResponseFormat

VALID = [
    "<think>reason</think><answer>42</answer>",
    "<think>\nstep one\nstep two\n</think>\n\n<answer>\n42\n</answer>\n",
    "   <think> a </think>   <answer> b </answer>   ",
    "<think>multi\n\nline</think>\n<answer>x < y and y > z</answer>",
]
INVALID = [
    "",
    "just an answer",
    "<think>reason</think>",
    "<answer>42</answer>",
    "<answer>42</answer><think>reason</think>",  # wrong order
    "preamble <think>r</think><answer>a</answer>",  # text outside
    "<think>r</think><answer>a</answer> trailing",
    "<think>r</think> between <answer>a</answer>",  # text between
    "<think>r</think><answer>a</answer><answer>b</answer>",  # repeated tag
    "<think>r<think>s</think></think><answer>a</answer>",  # nested
    "<think>r</think><answer>a",  # unclosed
    "<think></think><answer>a</answer>",  # empty reasoning
    "<think>r</think><answer>  </answer>",  # empty answer
    "<THINK>r</THINK><ANSWER>a</ANSWER>",  # tags are case-sensitive
    "<reasoning>r</reasoning><answer>a</answer>",  # other tag than configured
    "<think>r</answer><answer>a</think>",  # crossed
]


def test_fmt_accepts_exactly_the_format():
    scores = FormatReward()(prompts=["p"] * (len(VALID) + len(INVALID)), completions=VALID + INVALID)
    assert scores.tolist() == [1.0] * len(VALID) + [0.0] * len(INVALID)


def test_fmt_tags_are_configurable_and_empty_blocks_optional():
    qwen3 = FormatReward(think_tag="reasoning")
    assert qwen3(prompts=["p"] * 2, completions=["<reasoning>r</reasoning><answer>a</answer>", VALID[0]]).tolist() == [
        1.0,
        0.0,
    ]
    lenient = FormatReward(allow_empty=True)
    assert lenient(prompts=["p"], completions=["<think></think><answer>a</answer>"]).tolist() == [1.0]
    with pytest.raises(ValueError, match="plain tag name"):
        FormatReward(think_tag="<think>")
    with pytest.raises(ValueError, match="must differ"):
        FormatReward(think_tag="a", answer_tag="a")


def test_parse_returns_the_blocks():
    parsed = ResponseFormat().parse(VALID[1])
    assert parsed.think_block == "<think>\nstep one\nstep two\n</think>"
    assert parsed.reasoning.strip() == "step one\nstep two" and parsed.answer.strip() == "42"


LOGPROBS = torch.tensor([[-1.0, -2.0, -9.0], [-0.5, -0.5, -0.5], [-3.0, -7.0, -7.0]])
MASK = torch.tensor([[1, 1, 0], [1, 1, 1], [0, 0, 0]])


def inputs(n=3, **kw):
    return RewardInputs(prompts=["p"] * n, completions=["c"] * n, completion_ids=[[1]] * n, **kw)


def test_sequence_entropy_is_minus_mean_logprob_of_sampled_tokens():
    high = call_component(SequenceEntropy(), inputs(logprobs=LOGPROBS, completion_mask=MASK))
    assert high[:2].tolist() == pytest.approx([1.5, 0.5]) and math.isnan(high[2])  # empty completion: missing
    low = call_component(SequenceEntropy(prefer="low"), inputs(logprobs=LOGPROBS, completion_mask=MASK))
    assert low[:2].tolist() == pytest.approx([-1.5, -0.5])  # EM-GRPO: mean log-prob
    assert (
        SequenceEntropy().normalization == "rank"
        and SequenceEntropy.needs_logprobs
        and not SequenceEntropy.needs_token_entropy
    )


def test_entropy_gated_by_format_scores_only_well_formed_responses():
    completions = ["<think>a</think><answer>b</answer>", "no tags at all", "<reasoning>a</reasoning><answer>b</answer>"]
    batch = RewardInputs(
        prompts=["p"] * 3,
        completions=completions,
        completion_ids=[[1]] * 3,
        logprobs=LOGPROBS,
        completion_mask=torch.ones(3, 3),
    )
    gated = call_component(SequenceEntropy(valid_format_only=True), batch)
    assert gated[0].item() == pytest.approx(4.0) and math.isnan(gated[1]) and math.isnan(gated[2])
    qwen3 = call_component(SequenceEntropy(valid_format_only=True, think_tag="reasoning"), batch)
    assert math.isnan(qwen3[0]) and qwen3[2].item() == pytest.approx(17 / 3)
    assert not torch.isnan(call_component(SequenceEntropy(), batch)).any()  # off by default


def test_token_entropy_is_mean_full_distribution_entropy():
    torch.manual_seed(0)
    logits = torch.randn(3, 3, 11)
    probs = logits.softmax(-1)
    per_token = -(probs * probs.log()).sum(-1)  # what the trainer passes as token_entropy
    manual = [
        sum(per_token[i, t].item() for t in range(3) if MASK[i, t]) / max(1, int(MASK[i].sum())) for i in range(2)
    ]
    high = call_component(TokenEntropy(), inputs(token_entropy=per_token, completion_mask=MASK))
    assert high[:2].tolist() == pytest.approx(manual, abs=1e-6) and math.isnan(high[2])
    low = call_component(TokenEntropy(prefer="low"), inputs(token_entropy=per_token, completion_mask=MASK))
    assert low[:2].tolist() == pytest.approx([-m for m in manual], abs=1e-6)
    with pytest.raises(RewardError, match="needs 'token_entropy'"):
        call_component(TokenEntropy(), inputs(completion_mask=MASK))
    with pytest.raises(ValueError, match="prefer"):
        TokenEntropy(prefer="max")


def test_nover_efficiency_counts_longer_and_worse_valid_others():
    # One group of 4: lengths 2, 5, 7, 9; −log ppl scores (higher = lower ppl); row 3 invalid.
    lengths = torch.tensor([2.0, 5.0, 7.0, 9.0])
    scores = torch.tensor([-1.0, -2.0, -0.5, float("nan")])
    # row 0: others valid = rows 1, 2; longer & worse: row 1 (len 5 > 2, score -2 < -1) → 1/2
    # row 1: row 2 is longer but better → 0; row 2: nobody longer among valid → 0; row 3 invalid → 0
    assert efficiency_within_groups(lengths, scores, 4).tolist() == [0.5, 0.0, 0.0, 0.0]
    # Two groups are independent; a group with one valid response scores 0.
    two = efficiency_within_groups(torch.tensor([1.0, 3.0, 1.0, 3.0]), torch.tensor([0.0, -1.0, 0.0, float("nan")]), 2)
    assert two.tolist() == [1.0, 0.0, 0.0, 0.0]


def test_nover_efficiency_reads_ppl_scores_of_the_same_step():
    class FakePpl(RewardComponent):
        name = "ppl"

        def __call__(self, prompts, completions, **kwargs):
            return torch.tensor([-1.0, -2.0])

    b = RewardInputs(prompts=["p"] * 2, completions=["a", "b"], completion_ids=[[1], [1, 2, 3]], group_size=2)
    scores = score_components([FakePpl(), NoverEfficiency()], b)
    assert scores[:, 1].tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="'len' reads the scores of \\['ppl'\\]"):
        score_components([NoverEfficiency()], b)


def test_token_budget_is_linear_above_the_budget():
    ids = [[0] * n for n in (0, 10, 15, 20, 40)]
    scores = call_component(
        TokenBudget(budget=10, falloff=10), RewardInputs(prompts=["p"] * 5, completions=["c"] * 5, completion_ids=ids)
    )
    assert scores.tolist() == pytest.approx([1.0, 1.0, 0.5, 0.0, 0.0])
    assert TokenBudget(budget=8).falloff == 8
    with pytest.raises(ValueError, match="falloff"):
        TokenBudget(budget=0)

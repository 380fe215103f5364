"""Model-backed judges on real (tiny/offline) models, the YAML wiring, and a full sample run."""

import yaml
from jsonargparse import ArgumentParser

from maestro_lit.evals.callback import BenchmarkCallback
from maestro_lit.evals.judges.base import GradeRequest, PairRequest
from maestro_lit.evals.judges.proxy import ProxyJudge
from maestro_lit.evals.judges.reward_model import RewardModelJudge
from maestro_lit.rewards.tiny_rm import build_tiny_reward_model

YAML = """
callback:
  every_n_train_steps: 50
  max_new_tokens: 48
  progress_bar: false
  benchmarks:
    - class_path: maestro_lit.evals.suite.alpaca_eval.AlpacaEval
      init_args:
        judge: {class_path: maestro_lit.evals.judges.proxy.ProxyJudge}
    - class_path: maestro_lit.evals.suite.arena_hard.ArenaHard
      init_args:
        judge: {class_path: maestro_lit.evals.judges.proxy.ProxyJudge}
    - class_path: maestro_lit.evals.suite.mt_bench.MTBench
      init_args:
        judge: {class_path: maestro_lit.evals.judges.proxy.ProxyJudge}
    - class_path: maestro_lit.evals.suite.creative_writing.CreativeWriting
      init_args:
        judge: {class_path: maestro_lit.evals.judges.proxy.ProxyJudge}
    - class_path: maestro_lit.evals.suite.eq_bench.EQBench
    - class_path: maestro_lit.evals.suite.truthfulqa.TruthfulQA
    - class_path: maestro_lit.evals.suite.ifeval.IFEval
      init_args: {enabled: true, limit: 10}
"""


def build_from_yaml(text):
    parser = ArgumentParser()
    parser.add_class_arguments(BenchmarkCallback, "callback")
    cfg = parser.parse_object(yaml.safe_load(text))
    return parser.instantiate_classes(cfg).callback


def test_reward_model_judge_tiny_model(tmp_path):
    path = build_tiny_reward_model(tmp_path / "rm")
    judge = RewardModelJudge(path, batch_size=2)
    grades = judge.grade([GradeRequest("what is a cat", "a cat is good"), GradeRequest("why", "the dog sat")], None)
    assert len(grades) == 2 and all(isinstance(g, float) for g in grades)
    same = judge.compare([PairRequest("what is a cat", "a cat is good", "a cat is good")], None)
    assert same == [0.5]  # identical answers tie
    other = judge.compare(
        [
            PairRequest("what is a cat", "a cat is good", "the dog sat"),
            PairRequest("what is a cat", "the dog sat", "a cat is good"),
        ],
        None,
    )
    assert sorted(other) == [0.0, 1.0]  # swapping the pair swaps the outcome
    assert judge.metric("win_rate") == "win_rate_rm"
    assert RewardModelJudge(path, batch_size=2).scorer is judge.scorer  # one judge model per process


def test_proxy_judge_prefers_relevant_answer():
    judge = ProxyJudge()
    q = "How do I keep cut flowers fresh?"
    out = judge.compare(
        [
            PairRequest(
                q, "Change the vase water daily and trim the flower stems.", "The stock market closed higher today."
            ),
            PairRequest(q, "Trim the stems.", "Trim the stems."),
        ]
    )
    assert out == [1.0, 0.5]
    grades = judge.grade(
        [
            GradeRequest(q, "Bananas are yellow.", reference="Trim stems and change water."),
            GradeRequest(q, "Trim the stems and change the water.", reference="Trim stems and change water."),
        ]
    )
    assert 1.0 <= grades[0] < grades[1] <= 10.0


def test_yaml_class_paths_and_all_seven_on_samples(tmp_path):
    cb = build_from_yaml(YAML)
    assert len(cb.enabled) == 7 and cb.every_n_train_steps == 50
    from types import SimpleNamespace

    module = SimpleNamespace(
        device="cpu",
        generate_chat=lambda convs, n: ["A short everyday answer: " + c[-1]["content"][:60].lower() for c in convs],
    )
    results = cb.evaluate(module)
    metrics = {f"{r.name}/{k}" for r in results for k in r.metrics}
    for name in (
        "alpaca_eval/win_rate_proxy",
        "alpaca_eval/lc_win_rate_proxy",
        "arena_hard/win_rate_proxy",
        "mt_bench/score_proxy",
        "creative_writing/score_proxy",
        "creative_writing/distinct_2",
        "eq_bench/score",
        "truthfulqa/rougeL_diff",
        "truthfulqa/embed_diff",
        "ifeval/prompt_loose",
    ):
        assert name in metrics
    assert next(r for r in results if r.name == "eq_bench").failed == 8  # no numbers written
    assert next(r for r in results if r.name == "ifeval").n_items == 10

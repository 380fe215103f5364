"""Testbed ground truth: the true utility on hand-made completions, the oracle's per-category
scalarisation, the mutual-information helper, the data split and the method configs."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from maestro_lab.testbed import metrics as tm
from maestro_lab.testbed.oracle import CategoryWeights
from maestro_lab.testbed.runner import CONFIG_DIR, METHODS, method_config, method_files
from maestro_lab.testbed.truth import HELDOUT_PROMPTS, TRAIN_PROMPTS, TrueUtility
from maestro_lit import grpo


@pytest.fixture(scope="module")
def truth():
    return TrueUtility()


def test_true_utility_on_hand_made_completions(truth):
    ref = "The capital of France is Paris."
    other = "Waves sing softly."
    long24 = " ".join(f"w{i}" for i in range(24))  # 24 distinct words: 12 past the band -> length 0
    completions = [ref, "red red red red red red", long24, long24]
    columns = {"category": ["factual", "creative", "concise", "creative"], "reference": [ref, other, other, other]}
    raw = truth.components_matrix(["q"] * 4, completions, columns)
    torch.testing.assert_close(raw[0], torch.tensor([1.0, 1.0, 1.0]))  # diversity, overlap, length
    torch.testing.assert_close(raw[1], torch.tensor([(1 / 6 + 1 / 5) / 2, 0.0, 1.0]))
    torch.testing.assert_close(raw[2], torch.tensor([1.0, 0.0, 0.0]))
    utility = truth(["q"] * 4, completions, columns)
    expected = torch.tensor([1.0, 0.7 * (1 / 6 + 1 / 5) / 2 + 0.15, 0.15, 0.7])
    torch.testing.assert_close(utility, expected)
    # the same long, varied answer is good for a creative prompt and bad for a concise one
    assert utility[3] > 4 * utility[2]


def test_true_utility_rejects_unknown_categories(truth):
    with pytest.raises(KeyError, match="no true weights"):
        truth.combine(torch.ones(1, 3), ["poetry"])


def test_oracle_scalarises_each_category_with_its_true_weights():
    oracle = CategoryWeights()
    names = ["length", "diversity", "overlap"]  # a different order from the weights file
    oracle.bind(names, hidden_size=8)
    G, categories = 2, ["creative", "creative", "factual", "factual", "concise", "concise"]
    choice = oracle.choose(torch.zeros(6, 8), {"category": categories})
    expected = {"creative": [0.15, 0.7, 0.15], "factual": [0.15, 0.15, 0.7], "concise": [0.7, 0.15, 0.15]}
    torch.testing.assert_close(choice.weights, torch.tensor([expected[c] for c in categories]))
    assert choice.actions is None and not oracle.learnable
    # in each group the completion that wins the category's emphasised component gets the higher reward
    raw = torch.tensor(
        [[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]
    )
    scalar = grpo.scalarize(raw, choice.weights, G)
    z = grpo.normalize_within_groups(raw, G)
    torch.testing.assert_close(scalar, (z * choice.weights).sum(-1))
    assert scalar[0] > scalar[1] and scalar[3] > scalar[2] and scalar[4] > scalar[5]


def test_oracle_needs_the_category_column():
    oracle = CategoryWeights(weights={"a": {"x": 1.0, "y": 3.0}})
    oracle.bind(["x", "y"], 4)
    torch.testing.assert_close(
        oracle.choose(torch.zeros(1, 4), {"category": ["a"]}).weights, torch.tensor([[0.25, 0.75]])
    )
    with pytest.raises(KeyError, match="category"):
        oracle.choose(torch.zeros(1, 4), {})


def test_mutual_information_and_nearest_action():
    cats = ["a", "b", "c"] * 4
    dependent = torch.nn.functional.one_hot(torch.tensor([0, 1, 2] * 4), 4).float()
    assert tm.mutual_information_bits(tm.joint_from_probs(dependent, cats, ["a", "b", "c"])) == pytest.approx(
        1.58496, abs=1e-4
    )
    assert tm.mutual_information_bits(
        tm.joint_from_probs(torch.full((12, 4), 0.25), cats, ["a", "b", "c"])
    ) == pytest.approx(0.0, abs=1e-9)
    table = torch.tensor([[1 / 3] * 3, [0.7, 0.15, 0.15], [0.15, 0.7, 0.15]])
    assert tm.nearest_action(table, torch.tensor([0.15, 0.7, 0.15])) == 2


def _prompts(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_heldout_prompts_are_disjoint_and_cover_every_category(truth):
    train, heldout = _prompts(TRAIN_PROMPTS), _prompts(HELDOUT_PROMPTS)
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in heldout}
    for rows in (train, heldout):
        assert {r["category"] for r in rows} == set(truth.categories) and len(truth.categories) >= 3
        assert all(r["reference"] for r in rows)


def test_method_configs_differ_only_in_the_scalarizer(truth):
    design = yaml.safe_load((CONFIG_DIR / "v1.yaml").read_text())
    observed = [r["init_args"]["name"] for r in design["model"]["rewards"]]
    assert observed == truth.names  # every method observes exactly the true utility's components
    for r in design["model"]["rewards"]:
        assert r == truth.spec["components"][r["init_args"]["name"]]
    scalarizers, without_scalarizer = set(), []
    for method in METHODS:
        own = yaml.safe_load(method_files(method)[-1].read_text())
        assert set(own) == {"model"} and set(own["model"]) == {"scalarizer"}
        full = method_config(method)  # composed by the CLI from base + v1 + method
        scalarizers.add(json.dumps(full["model"].pop("scalarizer"), sort_keys=True))
        without_scalarizer.append(full)
    assert all(full == without_scalarizer[0] for full in without_scalarizer)
    assert len(scalarizers) == len(METHODS)

"""Testbed v2 (conflicting categories): the true utility on hand-made completions, the oracle's
per-category weights, the method configs, the runner's ``--testbed v2`` wiring, and the
static-can't-win check on the shipped texts. Testbed v1 stays the runner's default."""

import json

import pytest
import torch
import yaml

from maestro_lab.testbed import runner
from maestro_lab.testbed.__main__ import parse
from maestro_lab.testbed.oracle import CategoryWeights
from maestro_lab.testbed.runner import METHODS, build_config, method_config, method_files
from maestro_lab.testbed.truth import HELDOUT_PROMPTS, TRAIN_PROMPTS, TrueUtility
from maestro_lit.conductor.base import default_action_table

V2 = runner.paths_for("v2")
NAMES = ["diversity", "overlap", "length_short", "length_long"]


@pytest.fixture(scope="module")
def truth():
    return TrueUtility(V2["weights"])


def _words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


def test_v2_true_utility_on_hand_made_completions(truth):
    assert truth.names == NAMES and truth.categories == ["creative", "factual", "concise"]
    fact, tiny = "The capital of France is Paris.", "Waves sing softly."
    completions = [fact, _words(25), _words(25), tiny, _words(14), "red red red red red red"]
    columns = {
        "category": ["factual", "creative", "concise", "concise", "creative", "concise"],
        "reference": [fact, tiny, tiny, tiny, tiny, tiny],
    }
    raw = truth.components_matrix(["q"] * 6, completions, columns)
    # 6 words: short band, 14 below the long band
    torch.testing.assert_close(raw[0], torch.tensor([1.0, 1.0, 1.0, 0.0]))
    torch.testing.assert_close(raw[1], torch.tensor([1.0, 0.0, 0.0, 1.0]))  # 25 words: 17 past the short band
    torch.testing.assert_close(raw[3], torch.tensor([1.0, 1.0, 1.0, 0.0]))
    torch.testing.assert_close(raw[4], torch.tensor([1.0, 0.0, 0.5, 0.5]))  # 14 words: halfway between the bands
    torch.testing.assert_close(raw[5], torch.tensor([(1 / 6 + 1 / 5) / 2, 0.0, 1.0, 0.0]))
    utility = truth(["q"] * 6, completions, columns)
    torch.testing.assert_close(utility[:5], torch.tensor([0.9, 0.8, 0.2, 0.9, 0.5]))
    # the conflict: the same long answer is good for creative and bad for concise, and the
    # in-between length is mediocre for both
    assert utility[1] > 3 * utility[2] and utility[4] < min(utility[1], utility[3])


def test_v2_true_vectors_are_default_conductor_actions(truth):
    # uniform, emph_diversity, emph_overlap, emph_length_short, emph_length_long
    table = default_action_table(len(NAMES), 0.7)
    rows = {c: int((table - truth.table[c]).abs().sum(-1).argmin()) for c in truth.categories}
    assert rows == {"creative": 4, "factual": 2, "concise": 3}
    for c, k in rows.items():
        torch.testing.assert_close(table[k], truth.table[c])


def test_v2_oracle_uses_the_v2_weights():
    oracle = CategoryWeights(weights_path=str(V2["weights"]))
    oracle.bind(["length_long", "overlap", "diversity", "length_short"], hidden_size=4)
    choice = oracle.choose(torch.zeros(3, 4), {"category": ["creative", "factual", "concise"]})
    torch.testing.assert_close(
        choice.weights, torch.tensor([[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]])
    )


def test_v2_method_configs_differ_only_in_the_scalarizer(truth):
    design = yaml.safe_load(V2["design"].read_text())
    assert [r["init_args"]["name"] for r in design["model"]["rewards"]] == truth.names
    for r in design["model"]["rewards"]:
        assert r == truth.spec["components"][r["init_args"]["name"]]
    assert design["model"]["sampling"]["max_new_tokens"] == 48
    scalarizers, without_scalarizer = set(), []
    for method in METHODS:
        own = yaml.safe_load(method_files(method, "v2")[-1].read_text())
        assert set(own) == {"model"} and set(own["model"]) == {"scalarizer"}
        full = method_config(method, "v2")  # composed by the CLI from base + v2 + method
        scalarizers.add(json.dumps(full["model"].pop("scalarizer"), sort_keys=True))
        without_scalarizer.append(full)
    assert all(full == without_scalarizer[0] for full in without_scalarizer)
    assert len(scalarizers) == len(METHODS)
    static = method_config("static", "v2")["model"]["scalarizer"]["init_args"]["weights"]
    mean = torch.stack(list(truth.table.values())).mean(0)
    torch.testing.assert_close(torch.tensor(static) / sum(static), mean)  # static = mean of the true vectors


def test_runner_wires_v2_and_keeps_v1_the_default(tmp_path):
    v2 = build_config("oracle", 1, 3, 1, tmp_path, testbed="v2")
    assert v2["data"]["train_path"] == str(V2["train"]) and v2["data"]["val_path"] == str(V2["heldout"])
    assert v2["model"]["scalarizer"]["init_args"]["weights_path"] == str(V2["weights"])
    callback = v2["trainer"]["callbacks"][0]["init_args"]
    assert callback["heldout_path"] == str(V2["heldout"]) and callback["weights_path"] == str(V2["weights"])
    assert len(v2["model"]["rewards"]) == 4
    v1 = build_config("oracle", 1, 3, 1, tmp_path)
    assert v1["data"]["train_path"] == str(TRAIN_PROMPTS) and v1["data"]["val_path"] == str(HELDOUT_PROMPTS)
    assert len(v1["model"]["rewards"]) == 3 and v1["trainer"]["callbacks"][0]["init_args"].get("weights_path") is None
    assert parse([]).testbed == "v1" and parse([]).out == "results/testbed"
    assert parse(["--testbed", "v2"]).out == "results/testbed_v2"
    # v2 data are copies of v1's: same prompts, held-out disjoint from train
    assert (
        V2["train"].read_text() == TRAIN_PROMPTS.read_text()
        and V2["heldout"].read_text() == HELDOUT_PROMPTS.read_text()
    )


def test_no_static_weighting_reaches_the_oracle_in_every_category():
    from maestro_lab.testbed import static_check_v2 as check

    rows = [json.loads(line) for line in V2["train"].read_text().splitlines() if line.strip()]
    truth, raw, cats = check.score(str(V2["weights"]), rows, "own", per_category=8)
    order, grid, oracle, static, gap, *_ = check.analyse(truth, raw, cats, step=0.1)
    assert order == ["creative", "factual", "concise"]
    assert (gap.min(-1).values < -0.05).all()  # every static w loses > 0.05 in some category
    assert static.mean(-1).max() < oracle.mean() - 0.02

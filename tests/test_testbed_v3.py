"""Testbed v3's pieces without training: the warm-up corpus, the disjoint bands, the method files,
the resolution check, and the report's per-category tables."""

import collections
import json
import math

import pytest
import torch
import yaml

from maestro_lab.paths import TESTBED_ASSETS
from maestro_lab.testbed.behaviours import STYLES, style_of, warmup_pairs
from maestro_lab.testbed.metrics import style_shares
from maestro_lab.testbed.report import mean_tables, table_section
from maestro_lab.testbed.resolution import gap_closure, resolution
from maestro_lab.testbed.runner import V3_PRESETS, build_config, method_files, paths_for
from maestro_lab.testbed.truth import TrueUtility
from maestro_lit.paths import project_configs

V3 = paths_for("v3")


@pytest.fixture(scope="module")
def truth():
    return TrueUtility(V3["weights"])


@pytest.fixture(scope="module")
def rows():
    return [json.loads(line) for line in V3["train"].read_text().splitlines() if line.strip()]


def test_warmup_answers_every_prompt_in_every_style_whatever_the_category(rows):
    pairs = warmup_pairs(rows, copies=2)
    assert len(pairs) == len(rows) * len(STYLES) * 2
    by_category = collections.defaultdict(collections.Counter)
    category = {r["prompt"]: r["category"] for r in rows}
    for prompt, response in pairs:
        by_category[category[prompt]][style_of(response)] += 1
    for counts in by_category.values():  # nothing in the warm-up says which category wants which style
        assert set(counts) == set(STYLES) and len(set(counts.values())) == 1


def test_each_style_scores_on_exactly_one_band(rows, truth):
    pairs = warmup_pairs(rows[:60], copies=1)
    completions = [response for _, response in pairs]
    raw = truth.components_matrix(
        [p for p, _ in pairs], completions, {"category": [category for category in ["concise"] * len(pairs)]}
    )
    band = {"short": "length_short", "formatted": "length_medium", "long": "length_long"}
    for completion, scores in zip(completions, raw):
        expected = torch.tensor([1.0 if n == band[style_of(completion)] else 0.0 for n in truth.names])
        torch.testing.assert_close(scores, expected)


def test_no_word_count_scores_fully_on_two_bands(truth):
    for words in range(0, 40):
        raw = truth.components_matrix(["p"], [" ".join(["w"] * words)], {"category": ["concise"]})[0]
        assert (raw > 0).sum() <= 2 and raw.sum() <= 1.0 + 1e-6, (words, raw)


def test_true_weights_want_a_different_band_per_category(truth):
    favourite = {c: truth.names[int(w.argmax())] for c, w in truth.table.items()}
    assert favourite == {"creative": "length_long", "factual": "length_medium", "concise": "length_short"}
    design = yaml.safe_load(V3["design"].read_text())
    for reward in design["model"]["rewards"]:  # the observed components are exactly the truth's
        assert reward == truth.spec["components"][reward["init_args"]["name"]]


def test_style_of_reads_the_opener():
    assert [
        style_of(t) for t in ("Briefly: yes.", " In detail: a b c", "<think> x </think> <answer> y </answer>", "Paris")
    ] == ["short", "long", "formatted", "other"]
    shares = style_shares(
        ["Briefly: a.", "In detail: b", "Briefly: c."], ["concise", "concise", "creative"], ["creative", "concise"]
    )
    assert shares["creative"]["short"] == 1.0 and shares["concise"] == {
        "short": 0.5,
        "long": 0.5,
        "formatted": 0.0,
        "other": 0.0,
    }


def test_v3_methods_run_the_project_presets_and_only_name_what_v3_needs(tmp_path):
    presets = project_configs() / "methods"
    for method, preset in V3_PRESETS.items():
        files = method_files(method, "v3")
        assert files[:2] == [paths_for("v3")["design"].parent / "base.yaml", V3["design"]]
        if preset is not None:
            assert files[2] == presets / f"{preset}.yaml"
    maestro = build_config("maestro", 0, 3, 1, tmp_path, testbed="v3")["model"]
    assert maestro["conductor_optimizer"]["init_args"]["lr"] == 5.0e-5  # the paper preset, unchanged
    assert maestro["scalarizer"]["init_args"]["action_table"] == "one_hot"
    fast = build_config("maestro_fast", 0, 3, 1, tmp_path, testbed="v3")["model"]
    assert fast["conductor_optimizer"]["init_args"]["lr"] == 0.003 and fast["scalarizer"] == maestro["scalarizer"]
    assert [r["init_args"].pop("normalization") for r in fast["rewards"]] == ["zscore"] * 3  # v3.yaml's default
    for variant, mode in (("maestro_literal", "none"), ("maestro_centered", "centered")):  # maestro_fast but these
        model = build_config(variant, 0, 3, 1, tmp_path, testbed="v3")["model"]
        assert [r["init_args"].pop("normalization") for r in model["rewards"]] == [mode] * 3
        assert model == fast
    trusted = build_config("trusted", 0, 3, 1, tmp_path, testbed="v3")["model"]
    names = [r["init_args"]["name"] for r in trusted["rewards"]]
    assert names == ["length_short", "length_medium", "length_long", "trusted"]
    assert trusted["rewards"][-1]["init_args"] == {"share": 0.25, "name": "trusted", "weights_path": str(V3["weights"])}
    oracle = build_config("oracle", 0, 3, 1, tmp_path, testbed="v3")["model"]
    assert oracle["scalarizer"]["init_args"]["weights_path"] == str(V3["weights"])
    assert (
        build_config("single", 0, 3, 1, tmp_path, testbed="v3")["model"]["scalarizer"]["init_args"]["component"]
        == "length_medium"
    )
    with pytest.raises(ValueError, match="unknown v3 method"):
        method_files("static_v2", "v3")


def test_resolution_check_counts_the_oracle_lead_in_seed_stds():
    ok = resolution([0.70, 0.71, 0.69], [0.33, 0.35, 0.34])
    assert ok.margin == pytest.approx(0.36) and ok.sigmas == pytest.approx(36.0) and ok.passed
    noisy = resolution([0.70, 0.50, 0.60], [0.40, 0.50, 0.45])
    assert noisy.sigmas == pytest.approx(0.15 / 0.1) and not noisy.passed and "FAILS" in noisy.describe()
    assert not resolution([0.3, 0.3], [0.4, 0.4]).passed and resolution([0.5], [0.4]).sigmas == math.inf
    with pytest.raises(ValueError, match="at least one"):
        resolution([], [0.4])


def test_gap_closure_and_report_tables():
    assert gap_closure(0.5, 0.3, 0.7) == pytest.approx(0.5) and gap_closure(0.2, 0.3, 0.7) == pytest.approx(-0.25)
    assert math.isnan(gap_closure(0.5, 0.7, 0.7))
    seeds = [{"concise": {"a": 1.0, "b": 0.0}}, {"concise": {"a": 0.5, "b": 0.5}}]
    assert mean_tables(seeds) == {"concise": {"a": 0.75, "b": 0.25}} and mean_tables([seeds[0], None]) == {}
    lines = table_section("T", "order {names}", {"m": mean_tables(seeds), "empty": {}})
    assert lines[:3] == ["### T", "", "order a/b"] and "| m | 0.75/0.25 |" in lines


def test_v3_assets_are_v2_prompts_with_a_category_tag(rows):
    v2 = [json.loads(line) for line in (TESTBED_ASSETS["v2"] / "train.jsonl").read_text().splitlines() if line.strip()]
    assert [r["prompt"] for r in rows] == [f"[{r['category']}] {r['prompt']}" for r in v2]
    heldout = {json.loads(line)["prompt"] for line in V3["heldout"].read_text().splitlines() if line.strip()}
    assert heldout.isdisjoint(r["prompt"] for r in rows) and len(heldout) == 60

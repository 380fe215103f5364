"""The testbed end to end on the tiny model: the comparison command in its smoke setting
writes all outputs, the Conductor analysis is logged, and a seed reproduces its numbers."""

import csv
import json

import pytest

from maestro_lab.testbed.__main__ import main
from maestro_lab.testbed.runner import run_one


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, tiny_model_path):
    out = tmp_path_factory.mktemp("testbed")
    main(["--smoke", "--out", str(out)])
    return out


def test_smoke_comparison_writes_markdown_figure_and_csv(smoke):
    for name in ("results.md", "results.png", "runs.csv", "curves.csv"):
        assert (smoke / name).stat().st_size > 0, name
    rows = list(csv.DictReader((smoke / "runs.csv").open()))
    assert [r["method"] for r in rows] == ["single", "static", "maestro", "oracle"]
    assert all(r["steps"] == "2" and 0.0 <= float(r["true_utility"]) <= 1.0 for r in rows)
    report = (smoke / "results.md").read_text()
    for text in ("| maestro |", "| oracle |", "creative", "Mutual information", "meta-reward"):
        assert text in report, text
    curve_steps = {r["step"] for r in csv.DictReader((smoke / "curves.csv").open())}
    assert curve_steps == {"0.0", "2.0"}


def test_runs_log_the_testbed_tags_and_the_action_figure(smoke):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(
        str(next((smoke / "runs" / "maestro" / "seed0").glob("events.out.tfevents*"))), size_guidance={"images": 0}
    ).Reload()
    scalars = set(events.Tags()["scalars"])
    for tag in (
        "testbed/true_utility",
        "testbed/true_utility/factual",
        "testbed/redundancy",
        "testbed/length_words",
        "testbed/mi_bits",
        "testbed/signal/adv_true_corr",
        "train/reward/overlap",
    ):
        assert tag in scalars, tag
    assert "testbed/conductor_actions" in events.Tags()["images"]
    final = json.loads((smoke / "runs" / "maestro" / "seed0" / "testbed_eval.json").read_text())["final"]
    assert set(final["actions"]) == {"creative", "factual", "concise"}
    assert all(abs(sum(p.values()) - 1) < 1e-6 for p in final["action_probs"].values())


def test_same_seed_gives_identical_numbers(smoke, tmp_path):
    again = run_one("maestro", 0, 2, 2, tmp_path, smoke=True)
    first = json.loads((smoke / "runs" / "maestro" / "seed0" / "testbed_eval.json").read_text())
    assert again["curve"] == first["curve"]
    assert again["final"] == first["final"]

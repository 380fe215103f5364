"""Testbed v3 end to end in its smoke setting (2 steps, every method, two worker processes), and
the resolution gate that must pass before any comparison run."""

import csv

import pytest

from maestro_lab.testbed import __main__ as testbed_main
from maestro_lab.testbed.model import ensure_testbed_v3_model
from maestro_lab.testbed.runner import V3_PRESETS


@pytest.fixture(scope="module")
def v3_smoke(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    ensure_testbed_v3_model(root=cache, warmup_steps=20)  # a short warm-up: the plumbing, not the science
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MAESTRO_LIT_CACHE", str(cache))
        out = tmp_path_factory.mktemp("v3")
        testbed_main.main(["--testbed", "v3", "--smoke", "--jobs", "2", "--out", str(out)])
    return out


def test_v3_smoke_comparison_runs_every_method_and_writes_the_report(v3_smoke):
    for name in ("results.md", "results.png", "runs.csv", "curves.csv", "resolution.md"):
        assert (v3_smoke / name).stat().st_size > 0, name
    rows = list(csv.DictReader((v3_smoke / "runs.csv").open()))
    assert [r["method"] for r in rows] == list(V3_PRESETS)
    for row in rows:
        weights = [float(row[f"weights/concise/{n}"]) for n in ("length_short", "length_medium", "length_long")]
        # trusted's label column carries weight 0
        assert sum(weights) == pytest.approx(1.0, abs=1e-5) or row["method"] == "trusted"
        assert sum(
            float(row[f"styles/creative/{s}"]) for s in ("short", "long", "formatted", "other")
        ) == pytest.approx(1.0)
    oracle = next(r for r in rows if r["method"] == "oracle")
    assert float(oracle["weights/factual/length_medium"]) == pytest.approx(0.7) and float(
        oracle["mi_weights_bits"]
    ) == pytest.approx(1.585, abs=1e-3)
    report = (v3_smoke / "results.md").read_text()
    for text in (
        "gap closure",
        "MI (bits)",
        "Evaluation weights per category",
        "Answer styles per category",
        "resolution check",
        "| trusted |",
    ):
        assert text in report, text
    assert "seed std" in (v3_smoke / "resolution.md").read_text()


def _fake(method, seed, utility):
    return {"method": method, "seed": seed, "final": {"true_utility": utility}}


def test_comparison_stops_when_the_oracle_does_not_resolve(tmp_path, monkeypatch):
    calls = []

    def fake_run_all(pairs, args, out, done_before=()):
        calls.append(pairs)
        return [_fake(m, s, {"oracle": 0.50 + 0.05 * s, "equal": 0.45}[m]) for m, s in pairs]

    monkeypatch.setattr(testbed_main, "run_all", fake_run_all)
    with pytest.raises(SystemExit, match="resolution check failed"):
        testbed_main.main(["--testbed", "v3", "--seeds", "3", "--out", str(tmp_path)])
    # nothing else ran
    assert calls == [[("oracle", 0), ("equal", 0), ("oracle", 1), ("equal", 1), ("oracle", 2), ("equal", 2)]]
    assert "FAILS" in (tmp_path / "resolution.md").read_text()


def test_comparison_goes_on_when_the_oracle_resolves(tmp_path, monkeypatch):
    calls = []

    def fake_run_all(pairs, args, out, done_before=()):
        calls.append((pairs, [(r["method"], r["seed"]) for r in done_before]))
        return [] if len(calls) > 1 else [_fake(m, s, {"oracle": 0.70 + 0.01 * s, "equal": 0.33}[m]) for m, s in pairs]

    monkeypatch.setattr(testbed_main, "run_all", fake_run_all)
    with pytest.raises(SystemExit, match="no finished runs"):  # the comparison was attempted after the check
        testbed_main.main(["--testbed", "v3", "--seeds", "2", "--methods", "maestro", "--out", str(tmp_path)])
    # check's runs reused
    assert calls[1] == ([("maestro", 0), ("maestro", 1)], [("oracle", 0), ("equal", 0), ("oracle", 1), ("equal", 1)])
    assert "passes" in (tmp_path / "resolution.md").read_text()

"""The meta-reward's bias under null rewards (conductor.null_credit), the centred modes, and the diagnose command."""

import importlib
import inspect
import math
from pathlib import Path

import pytest
import torch
import yaml

from maestro_lit import grpo
from maestro_lit.conductor.base import Conductor, StaticWeights
from maestro_lit.conductor.null_credit import NullModel, null_credit, run_start_null_credit
from maestro_lit.conductor.trusted import TrustedConductor
from maestro_lit.diagnose import main as diagnose_main

ROOT = Path(__file__).resolve().parents[1]
REWARD_FILES = sorted((ROOT / "configs" / "rewards").glob("*.yaml"))


def test_hand_computed_two_completions_rank_against_zscore():
    """G = 2, one rank and one z-score component, one-hot actions drawn uniformly.

    Within a group the rank column is {1, 1/2} and the z-score column {+1/√2, −1/√2}; with two rows the
    advantage is ±1/√2 by the sign of s_j − s_other. A rank action meeting a rank action: ±, mean 0. Meeting a
    z-score action (probability 1/2): s_j = 1 beats both z values, s_j = 1/2 beats only −1/√2, so the sign is +
    with probability 3/4 and its mean 1/2. E[credit | rank] = 1/2 · 1/2 · 1/√2 = 0.1768; the z action gets the
    opposite (the advantages of a group sum to 0).
    """
    result = null_credit(torch.eye(2), ["r", "z"], ["r", "z"], ["rank", "zscore"], 2, NullModel(groups=100_000))
    expected = 0.5 * 0.5 / math.sqrt(2)
    assert result.credit[0] == pytest.approx(expected, abs=0.01)
    assert result.credit[1] == pytest.approx(-expected, abs=0.01)
    assert max(result.standard_error) < 0.004


def test_the_paper_preset_credits_rank_actions_for_their_normalisation():
    names = ["ppl", "fmt", "ent", "len", "pref"]
    modes = ["rank", "zscore", "rank", "zscore", "zscore"]
    credit = null_credit(torch.eye(5), names, names, modes, 4, NullModel(groups=20_000)).as_dict()
    assert credit["ppl"] > 0.3 and credit["ent"] > 0.3
    assert all(credit[n] < -0.15 for n in ("fmt", "len", "pref"))
    invalid = null_credit(torch.eye(5), names, names, modes, 4, NullModel(groups=20_000, invalid_rates={"ppl": 0.3}))
    assert invalid.as_dict()["ent"] > invalid.as_dict()["ppl"] + 0.1  # missing ppl rows rank 0: ent gains


def test_centre_within_groups_by_hand():
    scores = torch.tensor([[3.0], [1.0], [float("nan")], [2.0]])
    assert grpo.normalize_components(scores, 4, ["centered"]).flatten().tolist() == [1.0, -1.0, 0.0, 0.0]
    ranked = grpo.normalize_components(scores, 4, ["rank_centered"]).flatten()
    assert torch.allclose(ranked, torch.tensor([1 / 3, -1 / 3, 0.0, 0.0]))  # ranks 1, 1/3, —, 2/3 minus 2/3
    assert grpo.centered_modes(["rank", "zscore", "none", "rank_centered"]) == [
        "rank_centered",
        "zscore",
        "centered",
        "rank_centered",
    ]


def _file_components(path: Path) -> tuple[list[str], list[str]]:
    """Names and normalisations of a rewards file, class defaults filled in, without building the components."""
    names, modes = [], []
    for entry in yaml.safe_load(path.read_text())["model"]["rewards"]:
        module, _, cls_name = entry["class_path"].rpartition(".")
        cls = getattr(importlib.import_module(module), cls_name)
        defaults = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()}
        args = {**defaults, **(entry.get("init_args") or {})}
        names.append(args.get("name", cls.name))
        modes.append(args.get("normalization", cls.normalization))
    return names, modes


@pytest.mark.parametrize("path", REWARD_FILES, ids=lambda p: p.stem)
def test_centred_modes_leave_no_null_credit_in_any_shipped_rewards_file(path):
    names, modes = _file_components(path)
    rates = {names[0]: 0.3}  # a share of format failures on the first component, as ppl has
    null = NullModel(groups=30_000, seed=0, invalid_rates=rates)
    result = null_credit(torch.eye(len(names)), names, names, grpo.centered_modes(modes), 4, null)
    assert max(abs(c) for c in result.credit) <= 0.02, result.as_dict()


def test_run_start_credit_only_for_a_conductor_credited_with_its_advantage():
    names = ["ppl", "fmt"]
    conductor = Conductor()
    conductor.bind(names, 8)
    metrics = run_start_null_credit(conductor, ["rank", "zscore"], 4)
    assert set(metrics) == {"conductor/null_credit/only_ppl", "conductor/null_credit/only_fmt"}
    assert metrics["conductor/null_credit/only_ppl"] > 0.2 > -0.2 > metrics["conductor/null_credit/only_fmt"]
    state = torch.random.get_rng_state()
    run_start_null_credit(conductor, ["rank", "zscore"], 4)
    assert torch.equal(state, torch.random.get_rng_state())  # a run's own draws are left alone
    static, trusted = StaticWeights(), TrustedConductor(trusted_component="fmt")
    static.bind(names, 8)
    trusted.bind(names, 8)
    assert run_start_null_credit(static, ["rank", "zscore"], 4) == {}
    assert run_start_null_credit(trusted, ["rank", "zscore"], 4) == {}


def test_diagnose_command_prints_the_table(capsys):
    rewards = str(ROOT / "configs" / "rewards" / "quickstart.yaml")
    assert diagnose_main(["--config", rewards, "--groups", "2000", "--invalid", "length=0.5", "--centered"]) == 0
    out = capsys.readouterr().out
    assert "| only_length |" in out and "| only_diversity |" in out and "centred modes" in out
    with pytest.raises(ValueError, match="not among the reward components"):
        diagnose_main(["--config", rewards, "--groups", "10", "--invalid", "ppl=0.3"])
    with pytest.raises(ValueError, match="expected NAME=VALUE"):
        diagnose_main(["--config", rewards, "--invalid", "ppl"])


class _Logger:
    def __init__(self):
        self.metrics: list[tuple[dict, int]] = []

    def log_hyperparams(self, params):
        pass

    def log_metrics(self, metrics, step):
        self.metrics.append((dict(metrics), step))


def test_a_conductor_run_logs_its_null_credit_once_at_the_start(make_module, monkeypatch):
    from maestro_lit.train.module import MaestroModule

    logger = _Logger()
    monkeypatch.setattr(MaestroModule, "logger", property(lambda self: logger))
    module = make_module(scalarizer=Conductor())
    module.on_fit_start()
    assert len(logger.metrics) == 1
    metrics, step = logger.metrics[0]
    assert step == 0 and set(metrics) == {f"conductor/null_credit/{a}" for a in module.scalarizer.action_names}
    assert all(abs(v) < 0.05 for v in metrics.values())  # two z-scored components: no bias
    logger.metrics.clear()
    make_module(scalarizer=StaticWeights()).on_fit_start()
    assert logger.metrics == []  # no Conductor, nothing to diagnose


def test_a_shared_format_failure_shows_in_each_component_as_declared():
    names = ["ppl", "fmt", "len", "pref"]
    null = NullModel(format_failure=0.3, on_failure={"fmt": "indicator", "ppl": "missing", "len": "zero"})
    raw = null.draw(names, 20_000, torch.Generator().manual_seed(1))
    failed = raw[:, 1] == 0
    assert set(raw[:, 1].tolist()) == {0.0, 1.0} and abs(float(failed.double().mean()) - 0.3) < 0.015
    assert torch.equal(torch.isnan(raw[:, 0]), failed)
    assert bool((raw[failed, 2] == 0).all()) and bool(((raw[~failed, 2] > 0) & (raw[~failed, 2] < 1)).all())
    assert bool(torch.isfinite(raw[:, 3]).all())
    with pytest.raises(ValueError, match="on_failure"):
        NullModel(on_failure={"fmt": "sometimes"})


def test_centred_and_unscaled_advantages_leave_no_credit_even_for_skewed_components():
    """A shared format failure makes fmt and len skewed within a group; centring keeps their mean at 0, and
    without the division by the group's std (scale_rewards none) the credit is linear in them, so exactly 0."""
    names = ["ppl", "fmt", "ent", "len", "pref"]
    modes = grpo.centered_modes(["rank", "zscore", "rank", "zscore", "zscore"])
    null = NullModel(
        groups=20_000, format_failure=0.3, on_failure={"fmt": "indicator", "ppl": "missing", "len": "zero"}
    )
    result = null_credit(torch.eye(5), names, names, modes, 4, null, scale="none")
    assert max(abs(c) for c in result.credit) <= 0.02, result.as_dict()

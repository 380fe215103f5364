"""``python -m maestro_lit diagnose --config REWARDS.yaml [--config METHOD.yaml]``: the meta-reward's bias.

Prints the credit each Conductor action expects when no reward component carries any information
(``conductor.null_credit``): every component's raw scores drawn i.i.d. N(mean, std²) (default N(0, 1),
``--null NAME=MEAN:STD``), a share of them missing (``--invalid NAME=RATE``) or one shared format failure
shown by several components (``--format-failure 0.3 --on-failure fmt=indicator --on-failure ppl=missing``),
actions uniform per completion,
through the training step's own normalisation and advantage code. A bias-free reward set gives every action
about 0 (within the printed standard error); a positive value is credit the Conductor earns for the
normalisation alone. ``--centered`` also prints the same reward set with every component's centred mode;
``--scale-rewards`` overrides ``grpo_settings.scale_rewards`` (the group-std division turns a skewed
component's shape into credit; ``none`` leaves only the centre).

Reads ``model.rewards``, ``model.scalarizer`` and ``model.grpo_settings`` (``num_generations``,
``reward_normalization``, ``scale_rewards``) from the ``--config`` files, later files winning per key, as
``fit`` composes them; a method whose Conductor is not credited with its own advantage (equal weights, the
trusted or joint Conductor) is diagnosed with the paper's one-hot table over the same components.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from jsonargparse import ArgumentParser

from maestro_lit import grpo
from maestro_lit.conductor.base import Conductor, Scalarizer
from maestro_lit.conductor.null_credit import NullCredit, NullModel, credits_own_advantage, null_credit
from maestro_lit.rewards.base import RewardComponent, normalizations
from maestro_lit.settings import GRPOSettings


def _pairs(values: Sequence[str], option: str) -> dict[str, str]:
    out = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise ValueError(f"{option} {value!r}: expected NAME=VALUE")
        out[name] = rest
    return out


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a number") from None


def compose_model(paths: Sequence[str]) -> dict[str, Any]:
    """``model.rewards`` / ``model.scalarizer`` (later file wins) and ``model.grpo_settings`` (merged per key)."""
    model: dict[str, Any] = {"grpo_settings": {}}
    for path in paths:
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"--config {path}: no such file")
        try:
            loaded = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise ValueError(f"--config {path}: not valid YAML ({err})") from None
        block = loaded.get("model") or {} if isinstance(loaded, dict) else {}
        if not isinstance(block, dict):
            raise ValueError(f"--config {path}: 'model' must be a mapping")
        for key in ("rewards", "scalarizer"):
            if key in block:
                model[key] = block[key]
        model["grpo_settings"].update(block.get("grpo_settings") or {})
    if not model.get("rewards"):
        raise ValueError("no model.rewards in the --config files: give a rewards file (configs/rewards/*.yaml)")
    return model


def instantiate(model: dict[str, Any]) -> tuple[list[RewardComponent], Scalarizer]:
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--rewards", type=list[RewardComponent])
    parser.add_argument("--scalarizer", type=Scalarizer)
    scalarizer = model.get("scalarizer") or {"class_path": "maestro_lit.conductor.base.Conductor"}
    made = parser.instantiate(parser.parse_object({"rewards": model["rewards"], "scalarizer": scalarizer}))
    return list(made.rewards), made.scalarizer


def diagnose(
    components: Sequence[RewardComponent],
    scalarizer: Scalarizer,
    settings: GRPOSettings,
    null: NullModel,
    centered: bool = False,
) -> NullCredit:
    """The null credit of ``scalarizer``'s actions (bound here), or of a one-hot Conductor when it has none."""
    names = [c.name for c in components]
    unknown = sorted(n for n in null.names() if n not in names)
    if unknown:
        raise ValueError(f"--invalid/--null/--on-failure name {unknown} not among the reward components {names}")
    if not credits_own_advantage(scalarizer):
        scalarizer = Conductor(action_table="one_hot")
    scalarizer.bind(names, 8)
    modes = normalizations(components)
    return null_credit(
        scalarizer.action_table,
        scalarizer.action_names,
        scalarizer.component_names,
        grpo.centered_modes(modes) if centered else modes,
        settings.num_generations,
        null,
        settings.reward_normalization,
        settings.scale_rewards,
    )


def table(result: NullCredit) -> str:
    lines = ["| action | null credit | ± s.e. |", "|---|---|---|"]
    lines += [
        f"| {n} | {c:+.3f} | {e:.3f} |" for n, c, e in zip(result.action_names, result.credit, result.standard_error)
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maestro_lit diagnose", description=__doc__.split("\n")[0])
    parser.add_argument("--config", action="append", required=True, help="a config file (repeat; later wins)")
    parser.add_argument("--groups", type=int, default=20000, help="Monte-Carlo groups (default 20000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--group-size", type=int, default=None, help="G (default: the config's num_generations)")
    parser.add_argument("--invalid", action="append", default=[], help="NAME=RATE: share of NaN scores (repeat)")
    parser.add_argument("--null", action="append", default=[], help="NAME=MEAN:STD of the raw null scores (repeat)")
    parser.add_argument("--format-failure", type=float, default=0.0, help="share of completions failing the format")
    parser.add_argument(
        "--on-failure",
        action="append",
        default=[],
        help="NAME=indicator|missing|zero: how a component shows a format failure (repeat; e.g. fmt=indicator)",
    )
    parser.add_argument("--centered", action="store_true", help="also the same reward set with centred modes")
    parser.add_argument("--scale-rewards", default=None, help="override grpo_settings.scale_rewards (group|batch|none)")
    args = parser.parse_args(argv)
    model = compose_model(args.config)
    overrides = {"num_generations": args.group_size, "scale_rewards": args.scale_rewards}
    settings = GRPOSettings(**{**model["grpo_settings"], **{k: v for k, v in overrides.items() if v is not None}})
    rates = {k: _number(v, f"--invalid {k}") for k, v in _pairs(args.invalid, "--invalid").items()}
    means, stds = {}, {}
    for name, spec in _pairs(args.null, "--null").items():
        mean, sep, std = spec.partition(":")
        if not sep:
            raise ValueError(f"--null {name}={spec}: expected NAME=MEAN:STD")
        means[name], stds[name] = _number(mean, f"--null {name} mean"), _number(std, f"--null {name} std")
    on_failure = _pairs(args.on_failure, "--on-failure")
    null = NullModel(
        groups=args.groups,
        seed=args.seed,
        invalid_rates=rates,
        means=means,
        stds=stds,
        format_failure=args.format_failure,
        on_failure=on_failure,
    )
    torch.set_num_threads(1)
    components, scalarizer = instantiate(model)
    modes = dict(zip([c.name for c in components], normalizations(components)))
    raw_null = {name: (means[name], stds[name]) for name in means}
    header = (
        f"G = {settings.num_generations}, {args.groups} groups, seed {args.seed}, "
        f"{settings.reward_normalization}, scale_rewards {settings.scale_rewards}; normalisations {modes}; "
        f"invalid rates {rates or 'none'}; raw null (mean, std) {raw_null or 'N(0, 1) for all'}; "
        f"format failure {args.format_failure:g} shown by {on_failure or 'none'}"
    )
    print(header + "\n\n" + table(diagnose(components, scalarizer, settings, null)))
    if args.centered:
        print("\ncentred modes:\n\n" + table(diagnose(components, scalarizer, settings, null, centered=True)))
    return 0

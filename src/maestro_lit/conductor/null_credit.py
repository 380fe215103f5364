"""The meta-reward's bias: the credit each Conductor action expects when no reward component means anything.

MAESTRO credits completion j's action a_j with its group advantage under its own weight row:
s_j = w_{a_j} · R̃_j, then (s_j − mean_g s)/std_g s. If a component's normalised values do not average 0 in a
group (rank lies in (0, 1]; raw scores sit wherever their scale puts them), the action that weights it earns
credit for the normalisation alone. This module measures that credit by Monte-Carlo under a *null* model
(every component's raw scores drawn independently of everything, a share of them missing), through the same
``grpo.scalarize`` and ``grpo.group_advantages`` a training step uses. A bias-free reward set gives every
action 0; what is left is what the Conductor learns from the normalisation rather than from the rewards.

Pure torch, no Lightning: the CLI (``python -m maestro_lit diagnose``) and the start of a Conductor run
(``conductor/null_credit/<action>``) both call :func:`null_credit`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from maestro_lit import grpo
from maestro_lit.conductor.base import Conductor, Scalarizer

RUN_START_GROUPS = 4000
"""Groups the start-of-run measurement draws: about ±0.01 standard error per action, milliseconds of CPU."""

RUN_START_SEED = 0

FAILURE_KINDS = ("indicator", "missing", "zero")


@dataclass(frozen=True)
class NullModel:
    """How null scores are drawn: N(mean, std²) per component, i.i.d. over completions; a share missing (NaN).

    ``invalid_rates`` / ``means`` / ``stds`` are keyed by component name; absent names get 0 / 0 / 1. Only
    components normalised with ``none`` or ``centered`` see the mean and std; rank and z-score forget them.

    ``format_failure`` couples components through one shared event, as a format failure does in the paper's
    reward set: with that probability a completion fails, and each component named in ``on_failure`` shows it,
    ``indicator`` (1 if the completion passes, else 0: ``fmt``), ``missing`` (NaN on failure: ``ppl``) or
    ``zero`` (U(0, 1) on a pass, 0 on failure: NOVER's ``len``). Still independent of every action.
    """

    groups: int = RUN_START_GROUPS
    seed: int = RUN_START_SEED
    invalid_rates: Mapping[str, float] = field(default_factory=dict)
    means: Mapping[str, float] = field(default_factory=dict)
    stds: Mapping[str, float] = field(default_factory=dict)
    format_failure: float = 0.0
    on_failure: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.groups < 1:
            raise ValueError(f"null model: groups must be >= 1, got {self.groups}")
        for name, rate in self.invalid_rates.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"null model: invalid rate of '{name}' must be in [0, 1], got {rate}")
        for name, std in self.stds.items():
            if std < 0:
                raise ValueError(f"null model: std of '{name}' must be >= 0, got {std}")
        if not 0.0 <= self.format_failure <= 1.0:
            raise ValueError(f"null model: format_failure must be in [0, 1], got {self.format_failure}")
        for name, kind in self.on_failure.items():
            if kind not in FAILURE_KINDS:
                raise ValueError(f"null model: on_failure of '{name}' must be one of {FAILURE_KINDS}, got {kind!r}")

    def names(self) -> set[str]:
        """Every component name the model mentions."""
        return set(self.invalid_rates) | set(self.means) | set(self.stds) | set(self.on_failure)

    def draw(self, component_names: Sequence[str], rows: int, generator: torch.Generator) -> torch.Tensor:
        """Raw scores [rows, K] in float64."""
        k = len(component_names)
        mean = torch.tensor([float(self.means.get(n, 0.0)) for n in component_names], dtype=torch.float64)
        std = torch.tensor([float(self.stds.get(n, 1.0)) for n in component_names], dtype=torch.float64)
        raw = mean + std * torch.randn(rows, k, generator=generator, dtype=torch.float64)
        rate = torch.tensor([float(self.invalid_rates.get(n, 0.0)) for n in component_names], dtype=torch.float64)
        missing = torch.rand(rows, k, generator=generator, dtype=torch.float64) < rate
        raw = raw.masked_fill(missing, float("nan"))
        if self.on_failure:
            passed = torch.rand(rows, generator=generator, dtype=torch.float64) >= self.format_failure
            uniform = torch.rand(rows, generator=generator, dtype=torch.float64)
            for name, kind in self.on_failure.items():
                m = list(component_names).index(name)
                if kind == "indicator":
                    raw[:, m] = passed.to(raw.dtype)
                elif kind == "missing":
                    raw[:, m] = raw[:, m].masked_fill(~passed, float("nan"))
                else:
                    raw[:, m] = torch.where(passed, uniform, torch.zeros_like(uniform))
        return raw


@dataclass(frozen=True)
class NullCredit:
    """Expected meta-reward per action under a null model, with its Monte-Carlo standard error."""

    action_names: list[str]
    credit: list[float]
    standard_error: list[float]

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.action_names, self.credit))

    def metrics(self, prefix: str = "conductor/null_credit") -> dict[str, float]:
        return {f"{prefix}/{name}": value for name, value in zip(self.action_names, self.credit)}


def null_credit(
    action_table: torch.Tensor,
    action_names: Sequence[str],
    component_names: Sequence[str],
    normalizations: Sequence[str] | None,
    group_size: int,
    null: NullModel = NullModel(),
    order: str = "normalize_then_sum",
    scale: str = "group",
) -> NullCredit:
    """E[meta-reward | action] for MAESTRO's credit (each completion's group advantage under its own action),
    actions drawn uniformly per completion (the Conductor's zero-initialised start), scores from ``null``.

    ``action_table`` [A, K] holds each action's weight row; ``normalizations`` and ``order`` are
    ``grpo.scalarize``'s, ``scale`` is ``grpo.group_advantages``'s (``scale_rewards``). Rows with no score at
    all are left out as in training (advantage 0) and count in the mean with credit 0.
    """
    if group_size < 2:
        raise ValueError(f"null credit needs groups of at least 2 completions, got {group_size}")
    table = action_table.detach().to("cpu", torch.float64)
    if table.shape[1] != len(component_names):
        raise ValueError(f"action table has {table.shape[1]} columns for {len(component_names)} components")
    generator = torch.Generator().manual_seed(null.seed)
    rows = null.groups * group_size
    raw = null.draw(component_names, rows, generator)
    actions = torch.randint(table.shape[0], (rows,), generator=generator)
    scalar = grpo.scalarize(raw, table[actions], group_size, order, normalizations)
    advantages = grpo.group_advantages(scalar, group_size, scale=scale, valid=~grpo.unscored_rows(raw))
    credit, errors = [], []
    for a in range(table.shape[0]):
        picked = advantages[actions == a]
        credit.append(float(picked.mean()) if picked.numel() else float("nan"))
        errors.append(float(picked.std() / picked.numel() ** 0.5) if picked.numel() > 1 else float("nan"))
    return NullCredit(list(action_names), credit, errors)


def credits_own_advantage(scalarizer: Scalarizer) -> bool:
    """Whether ``scalarizer`` is a per-completion Conductor credited with MAESTRO's meta-reward (the advantage)."""
    return (
        isinstance(scalarizer, Conductor)
        and not scalarizer.learns_through_policy_loss
        and type(scalarizer).meta_reward is Scalarizer.meta_reward
        and type(scalarizer).outer_credit is Scalarizer.outer_credit
    )


def run_start_null_credit(
    scalarizer: Scalarizer,
    normalizations: Sequence[str] | None,
    group_size: int,
    order: str = "normalize_then_sum",
    scale: str = "group",
) -> dict[str, float]:
    """``conductor/null_credit/<action>`` for a bound Conductor credited with its advantage; {} for others.

    Seeded and independent of torch's global generator, so logging it leaves a run's draws unchanged.
    """
    if not credits_own_advantage(scalarizer) or group_size < 2:
        return {}
    result = null_credit(
        scalarizer.action_table,
        scalarizer.action_names,
        scalarizer.component_names,
        normalizations,
        group_size,
        NullModel(),
        order,
        scale,
    )
    return result.metrics()

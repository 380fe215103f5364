"""The run's reward set (docs/design.md §1 step 3): every component scores every completion → R ∈ ℝ^{N×K}.

Components are called by keyword, as TRL calls reward functions (``rewards.base``: prompts,
completions, completion_ids, the dataset columns, ``trainer_state``), plus exactly the extras
each one declares (``needs_*`` attributes): the scoring pass's ``logprobs`` / ``token_entropy``,
the reference ``ref_logprobs``, and for ``ppl`` the tokenizer, the prompt ids and
``reference_nll``, one batched no-grad forward of the reference model built once here.

A component that raises either stops the run (``on_reward_error="raise"``, the default: a
broken reward should not train silently) or scores the whole step as missing (``"skip"``:
NaN, masked out of the scalar reward and counted in ``train/reward_nan/<name>``).

Missing scores (NaN, None, or values beyond float32's range, which become inf) are watched over the training
steps (``MissingScores``): a component missing for more than ``MISSING_WARN_FRACTION`` (90 %) of the rows of
the last ``MISSING_WINDOW`` (10) steps gets a warning (logged by ``maestro_lit.rewards.reward_set``, first after
step 10, once, and again after it recovers); a step in which no
component scored any row (the scalar reward missing everywhere, every advantage 0) stops the run with
``RewardError`` at once, or under ``on_reward_error="skip"`` after ``MISSING_WINDOW`` such steps in a row.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import torch

from maestro_lit.rewards.base import (
    RewardComponent,
    RewardError,
    RewardInputs,
    check_component_order,
    normalizations,
    score_components,
)
from maestro_lit.rewards.perplexity import ReferenceNLL
from maestro_lit.settings import OnRewardError

Timer = Callable[[str], AbstractContextManager[Any]]
"""A phase timer: ``timer(name)`` is a context manager charging its block to ``name`` (``train.timing.PhaseTimer``)."""

MISSING_WINDOW = 10
"""Training steps the missing-score check looks back over (module docstring)."""

MISSING_WARN_FRACTION = 0.9
"""A component missing for more than this share of the rows of the last ``MISSING_WINDOW`` steps is warned about;
one that scores only ``scored_fraction`` of the rows by design, when it scores less than a tenth of that share."""

log = logging.getLogger(__name__)

REFERENCE_NLL_PHASE = "rewards/reference_nll"
"""``time/rewards/reference_nll``: the seconds of ``ppl``'s reference forward, a part of ``time/rewards``."""


class RewardSet:
    """Holds the reward components; ``compute`` returns the N×K matrix with NaN for missing scores.

    ``bind`` hands it the tokenizer and ``ppl``'s reference forward once the policy is loaded: the
    reward set never imports the policy, so the reward layer stays below it.
    """

    def __init__(self, components: Sequence[RewardComponent], on_reward_error: OnRewardError = "raise") -> None:
        self.components = list(components)
        check_component_order(self.components)  # unique names, dependencies first, valid normalisations
        if on_reward_error not in ("raise", "skip"):
            raise ValueError(f"model.on_reward_error must be 'raise' or 'skip', got {on_reward_error!r}")
        self.on_reward_error = on_reward_error
        self.tokenizer: Any = None
        self.reference_nll: ReferenceNLL | None = None

    @property
    def names(self) -> list[str]:
        return [component.name for component in self.components]

    @property
    def normalizations(self) -> list[str]:
        """Each component's within-group normalisation, for ``grpo.scalarize``."""
        return normalizations(self.components)

    @property
    def needs_reference(self) -> bool:
        """Whether any component reads the reference model's log-probs (``needs_reference_logprobs``)."""
        return any(c.needs_reference_logprobs for c in self.components)

    @property
    def needs_token_entropy(self) -> bool:
        """Whether the scoring pass must also return the full-distribution token entropy."""
        return any(c.needs_token_entropy for c in self.components)

    @property
    def needs_policy(self) -> bool:
        """Whether a component reads the tokenizer / prompt ids / ``reference_nll`` (``ppl``)."""
        return any(c.needs_policy for c in self.components)

    def bind(self, tokenizer: Any, reference_nll: ReferenceNLL | None) -> None:
        """The policy's tokenizer and ``ppl``'s reference forward (``policy.reference.reference_nll_for``;
        pass None when no component ``needs_policy``)."""
        self.tokenizer = tokenizer
        self.reference_nll = reference_nll if self.needs_policy else None

    def to(self, device: torch.device) -> None:
        """Move model-based components (reward models, encoders) next to the policy."""
        for component in self.components:
            if hasattr(component, "to"):
                component.to(device)

    def state_dict(self) -> dict[str, dict[str, Any]]:
        """Each stateful component's ``state_dict``, by name (components without state are left out)."""
        return {c.name: state for c in self.components if (state := c.state_dict())}

    def load_state_dict(self, states: dict[str, dict[str, Any]]) -> None:
        """Restore the components named in ``states``; a component the checkpoint does not name keeps its fresh state
        (a partial resume with other components)."""
        for component in self.components:
            if component.name in states:
                component.load_state_dict(states[component.name])

    def cost_metrics(self) -> dict[str, float]:
        """``train/reward_cost/<name>/<key>``: each component's running cost totals."""
        return {f"train/reward_cost/{c.name}/{key}": value for c in self.components for key, value in c.cost().items()}

    def compute(
        self, batch: RewardInputs, device: torch.device | str = "cpu", timer: Timer | None = None
    ) -> torch.Tensor:
        """R [N, K] on ``device``; non-finite scores become NaN (missing). ``timer`` charges the
        reference forward to ``REFERENCE_NLL_PHASE``."""
        if timer is not None and batch.reference_nll is not None:
            batch = dataclasses.replace(batch, reference_nll=_timed(batch.reference_nll, timer))
        raw = score_components(self.components, batch, self.on_reward_error).to(device)
        return raw.masked_fill(~torch.isfinite(raw), float("nan"))

    __call__ = compute


def _timed(function: Callable[..., torch.Tensor], timer: Timer) -> Callable[..., torch.Tensor]:
    def timed(*args: Any, **kwargs: Any) -> torch.Tensor:
        with timer(REFERENCE_NLL_PHASE):
            return function(*args, **kwargs)

    return timed


def missing_counts(raw: torch.Tensor) -> torch.Tensor:
    """[K + 2] float: per component the rows without a finite score, then the rows no component scored, then the
    rows; summed over ranks by the caller."""
    finite = torch.isfinite(raw)
    unscored = (~finite.any(dim=-1)).sum().reshape(1)
    rows = torch.tensor([raw.shape[0]], device=raw.device)
    return torch.cat([(~finite).sum(dim=0), unscored, rows]).float()


class MissingScores:
    """Watches ``missing_counts`` of the training steps (module docstring): warns about a component that is
    missing almost everywhere, stops the run when no component scores anything. Not checkpointed: after a resume
    the window starts again."""

    def __init__(
        self,
        names: Sequence[str],
        on_reward_error: OnRewardError = "raise",
        window: int = MISSING_WINDOW,
        warn_fraction: float = MISSING_WARN_FRACTION,
        scored_fractions: Sequence[float] | None = None,
    ) -> None:
        """``scored_fractions``: per component, the share it scores by design (``RewardComponent.scored_fraction``;
        default 1 for every one)."""
        self.names, self.on_reward_error = list(names), on_reward_error
        scored = [1.0] * len(self.names) if scored_fractions is None else list(scored_fractions)
        if len(scored) != len(self.names):
            raise ValueError(f"MissingScores: {len(scored)} scored fractions for {len(self.names)} components")
        # missing more than this share of the rows means scoring under a tenth (1 - warn_fraction) of the design
        self.warn_above = [1.0 - (1.0 - warn_fraction) * f for f in scored]
        self.window: deque[list[float]] = deque(maxlen=window)
        self.warned: set[str] = set()
        self.unscored_steps = 0  # consecutive steps in which no component scored any row

    def update(self, counts: torch.Tensor, step: int, report: bool = True) -> None:
        """``counts``: this step's ``missing_counts``; ``step``: its number (1-based); ``report``: log the warnings
        (rank zero)."""
        values = [float(v) for v in counts.detach().cpu()]
        self.window.append(values)
        rows = sum(v[-1] for v in self.window)
        first = step - len(self.window) + 1
        full = len(self.window) == self.window.maxlen  # early steps alone say little (a format still being learnt)
        for m, name in enumerate(self.names if full else []):
            fraction = sum(v[m] for v in self.window) / max(rows, 1)
            if fraction <= self.warn_above[m]:
                self.warned.discard(name)
            elif name not in self.warned:
                self.warned.add(name)
                if report:
                    steps = f"training step {step}" if first == step else f"training steps {first}-{step}"
                    log.warning(
                        "reward component '%s' has no score (NaN, None or beyond float32's range) for %.0f %% of the "
                        "completions of %s: it adds nothing to the advantages; check the component and the data "
                        "columns it reads (train/reward_nan/%s counts it per step)",
                        name,
                        100 * fraction,
                        steps,
                        name,
                    )
        self.unscored_steps = self.unscored_steps + 1 if values[-1] and values[-2] == values[-1] else 0
        limit = 1 if self.on_reward_error == "raise" else (self.window.maxlen or 1)
        if self.unscored_steps >= limit:
            run = f"in {self.unscored_steps} steps in a row, up to step {step}" if limit > 1 else f"in step {step}"
            raise RewardError(
                f"no reward component scored any completion {run} (every score NaN, None or beyond float32's "
                f"range): the scalar reward is missing everywhere and every advantage would be 0; check the reward "
                f"components {self.names} and the data columns they read"
            )

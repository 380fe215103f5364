"""The run's reward set (docs/design.md §1 step 3): every component scores every completion → R ∈ ℝ^{N×K}.

Components are called by keyword, as TRL calls reward functions (``rewards.base``: prompts,
completions, completion_ids, the dataset columns, ``trainer_state``), plus exactly the extras
each one declares (``needs_*`` attributes): the scoring pass's ``logprobs`` / ``token_entropy``,
the reference ``ref_logprobs``, and for ``ppl`` the tokenizer, the prompt ids and
``reference_nll``, one batched no-grad forward of the reference model built once here.

A component that raises either stops the run (``on_reward_error="raise"``, the default: a
broken reward should not train silently) or scores the whole step as missing (``"skip"``:
NaN, masked out of the scalar reward and counted in ``train/reward_nan/<name>``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import torch

from maestro_lit.rewards.base import (
    RewardComponent,
    RewardInputs,
    check_component_order,
    normalizations,
    score_components,
)
from maestro_lit.rewards.perplexity import ReferenceNLL
from maestro_lit.settings import OnRewardError

Timer = Callable[[str], AbstractContextManager[Any]]
"""A phase timer: ``timer(name)`` is a context manager charging its block to ``name`` (``train.timing.PhaseTimer``)."""

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

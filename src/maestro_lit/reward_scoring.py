"""Reward scoring (docs/design.md §1 step 3): every component scores every completion → R ∈ ℝ^{N×K}.

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
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import torch

from maestro_lit.rewards.base import (
    RewardComponent,
    RewardInputs,
    check_component_order,
    inputs_from_rollout,
    normalizations,
    score_components,
)
from maestro_lit.rewards.perplexity import ReferenceNLL
from maestro_lit.scoring import backbone_of
from maestro_lit.settings import OnRewardError
from maestro_lit.timing import PhaseTimer

REFERENCE_NLL_PHASE = "rewards/reference_nll"
"""``time/rewards/reference_nll``: the seconds of ``ppl``'s reference forward, a part of ``time/rewards``."""


def reference_nll_for(policy, context: Callable[[], AbstractContextManager[Any]] | None = None) -> ReferenceNLL:
    """``ppl``'s reference forward over the policy's reference weights: full fine-tuning's frozen
    initial copy, or the policy's own modules inside ``context`` (default ``Policy.reference()``:
    the LoRA adapters off; ``reference_sync.ReferenceWeights.context``: the synced adapter)."""
    if policy.reference_model is not None:
        reference = policy.reference_model
        return ReferenceNLL(backbone_of(reference), reference.get_output_embeddings())
    return ReferenceNLL(policy.backbone, policy.lm_head, context=context or policy.reference)


class RewardScorer:
    """Holds the reward components; ``score`` returns the N×K matrix with NaN for missing scores.

    ``bind(policy)`` gives it the tokenizer and builds ``reference_nll`` once (only when some
    component declares ``needs_policy``); ``inputs`` builds the step's ``RewardInputs``.
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

    def bind(self, policy, reference_context: Callable[[], AbstractContextManager[Any]] | None = None) -> None:
        """Tokenizer and the reference forward from the policy; called once the policy is loaded."""
        self.tokenizer = policy.tokenizer
        self.reference_nll = reference_nll_for(policy, reference_context) if self.needs_policy else None

    def to(self, device: torch.device) -> None:
        """Move model-based components (reward models, encoders) next to the policy."""
        for component in self.components:
            if hasattr(component, "to"):
                component.to(device)

    def inputs(self, rollout, prompts: Sequence[str], columns: Mapping[str, list], group_size: int, **extras: Any) -> RewardInputs:
        """The step's ``RewardInputs`` from a rollout; ``extras``: logprobs, ref_logprobs, token_entropy, trainer_state."""
        return inputs_from_rollout(
            rollout, prompts, columns, group_size, tokenizer=self.tokenizer, reference_nll=self.reference_nll, **extras
        )

    def score(self, batch: RewardInputs, device: torch.device | str = "cpu", timer: PhaseTimer | None = None) -> torch.Tensor:
        """R [N, K] on ``device``; non-finite scores become NaN (missing). ``timer`` charges the
        reference forward to ``REFERENCE_NLL_PHASE``."""
        if timer is not None and batch.reference_nll is not None:
            batch = dataclasses.replace(batch, reference_nll=_timed(batch.reference_nll, timer))
        raw = score_components(self.components, batch, self.on_reward_error).to(device)
        return raw.masked_fill(~torch.isfinite(raw), float("nan"))

    __call__ = score

    def score_rollout(
        self, rollout, prompts, columns, group_size: int, scored, ref_logprobs, trainer_state, device, timer: PhaseTimer | None = None
    ) -> torch.Tensor:
        """R [N, K] for a rollout, with its scoring pass (``scoring.ScoringPass``: logprobs, token_entropy) and reference log-probs."""
        batch = self.inputs(
            rollout, prompts, columns, group_size, logprobs=scored.logprobs.detach(), ref_logprobs=ref_logprobs,
            token_entropy=scored.token_entropy, trainer_state=trainer_state,
        )  # fmt: skip
        return self.score(batch, device, timer)


def _timed(function: Callable[..., torch.Tensor], timer: PhaseTimer) -> Callable[..., torch.Tensor]:
    def timed(*args: Any, **kwargs: Any) -> torch.Tensor:
        with timer(REFERENCE_NLL_PHASE):
            return function(*args, **kwargs)

    return timed

"""A learned reward model (any HF sequence classifier) as one reward component: the paper's ``pref``.

Thin adapter over :class:`maestro_lit.text.seqcls.SequenceClassifierScorer`, which the
reward-model benchmark judge shares, so training and evaluation read the model identically.
It follows Skywork-Reward-V2's model-card conventions: the pair is rendered with the reward
model's own chat template as exactly two turns, user (the raw prompt) and assistant (the
completion), with no system prompt added; the template's text is tokenised without adding
special tokens again (no doubled BOS); batches are padded; the score is ``logits[:, 0]``.
``model: maestro-lit/tiny-rm`` names an offline stand-in built on first use (``tiny_rm``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from maestro_lit.rewards.base import Normalization, RewardComponent
from maestro_lit.rewards.tiny_rm import resolve_reward_model_path
from maestro_lit.text.seqcls import SequenceClassifierScorer


class RewardModel(RewardComponent):
    """Score = reward model logit for (prompt, completion) rendered with its chat template."""

    def __init__(
        self,
        model: str,
        batch_size: int = 8,
        max_length: int = 1024,
        torch_dtype: str = "auto",
        trust_remote_code: bool = False,
        normalization: Normalization = "zscore",
        name: str = "reward_model",
    ) -> None:
        self.normalization = normalization
        self.scorer = SequenceClassifierScorer(
            resolve_reward_model_path(model),
            batch_size=batch_size,
            max_length=max_length,
            torch_dtype=torch_dtype,
            trust_remote_code=trust_remote_code,
        )
        self.name = name

    def to(self, device: str | torch.device) -> RewardModel:
        self.scorer.to(device)
        return self

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **kwargs: Any) -> torch.Tensor:
        return self.scorer.score(list(prompts), list(completions))

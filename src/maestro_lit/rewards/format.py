"""``fmt``: strict NOVER format validity, 1 if the response is exactly ``<think>…</think><answer>…</answer>``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from maestro_lit.rewards.base import Normalization, RewardComponent
from maestro_lit.rewards.nover_format import ResponseFormat


class FormatReward(RewardComponent):
    """1.0 for a response in the format (see ``nover_format``), else 0.0; tags are options."""

    def __init__(
        self,
        think_tag: str = "think",
        answer_tag: str = "answer",
        allow_empty: bool = False,
        normalization: Normalization = "zscore",
        name: str = "fmt",
    ) -> None:
        self.format = ResponseFormat(think_tag, answer_tag, allow_empty)
        self.normalization, self.name = normalization, name

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **kwargs: Any) -> torch.Tensor:
        return torch.tensor([float(self.format.parse(c) is not None) for c in completions], dtype=torch.float32)

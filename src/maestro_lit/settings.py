"""Settings of the GRPO inner loop (DESIGN §1 steps 5–6), validated when the config is parsed."""

from __future__ import annotations

from dataclasses import dataclass

from maestro_lit import grpo


@dataclass
class GRPOSettings:
    """Group size, inner-loop and loss settings of DESIGN §1 steps 5–6."""

    num_generations: int = 4
    num_iterations: int = 1
    num_minibatches: int = 1
    epsilon_low: float = 0.2
    epsilon_high: float = 0.2
    beta: float = 0.0
    loss_type: str = "grpo"
    max_grad_norm: float = 1.0
    reward_normalization: str = "normalize_then_sum"
    merge_adapters_for_rollout: bool = False
    accumulate_minibatches: bool = False
    max_consecutive_skips: int = 10

    def __post_init__(self) -> None:
        if self.num_generations < 2:
            raise ValueError(f"grpo_settings.num_generations must be >= 2 (GRPO needs a group to compare), got {self.num_generations}")
        if self.num_iterations < 1:
            raise ValueError(f"grpo_settings.num_iterations must be >= 1, got {self.num_iterations}")
        if self.loss_type not in grpo.LOSS_TYPES:
            raise ValueError(f"grpo_settings.loss_type {self.loss_type!r} is not one of {grpo.LOSS_TYPES}")
        if self.reward_normalization not in grpo.NORMALIZATION_ORDERS:
            raise ValueError(f"grpo_settings.reward_normalization {self.reward_normalization!r} is not one of {grpo.NORMALIZATION_ORDERS}")

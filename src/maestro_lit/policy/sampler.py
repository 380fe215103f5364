"""Generation for the module (docs/design.md §1 step 1): prompts → chat turns → tokens → completions.

One path for the training rollout, validation and the evals' ``generate_chat``: tokenise
once, generate with LoRA merged when ``model.sampling.merge_adapters_for_rollout`` is on,
through the rollout engine ``model.rollout.engine`` names (``maestro_lit.policy.engines``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch

from maestro_lit.data.messages import Conversation, Prompt, as_conversation
from maestro_lit.policy.rollout import GenerateEngine, Rollout, RolloutEngine, tokenize_prompts
from maestro_lit.settings import SamplingSettings


def user_turn(prompt: Prompt) -> Conversation:
    """A plain prompt as one user turn; a conversational prompt (a list of messages) as it is."""
    return as_conversation(prompt)


class NonFinitePolicy(RuntimeError):
    """The policy itself is no longer finite: its weights, its sampling probabilities or its scoring forward hold
    inf/NaN. Unlike one non-finite gradient (skipped by the inner loop) this does not recover; the module turns
    it into ``DivergenceError`` naming the last checkpoint. ``in_forward``: found in a forward, so the weights were
    already broken when the previous step ended (and a checkpoint written then holds them)."""

    def __init__(self, message: str, in_forward: bool = True) -> None:
        super().__init__(message)
        self.in_forward = in_forward


SAMPLING_NON_FINITE = "probability tensor contains"  # torch.multinomial's message for inf/NaN probabilities


def check_finite_forward(logprobs: torch.Tensor, completion_mask: torch.Tensor, hidden: torch.Tensor) -> None:
    """Raise ``NonFinitePolicy`` when a forward of the policy gave NaN log-probs on completion tokens or a non-finite
    hidden state (one host sync)."""
    nan_logprobs = (torch.isnan(logprobs) & completion_mask.bool()).any()
    if bool(nan_logprobs | ~torch.isfinite(hidden).all()):
        raise NonFinitePolicy("the scoring forward of the sampled completions gave NaN log-probs or hidden states")


def check_finite_weights(parameters: Sequence[torch.Tensor]) -> None:
    """Raise ``NonFinitePolicy`` when a trainable weight holds inf/NaN (one host sync)."""
    if parameters and not bool(torch.stack([torch.isfinite(p.detach()).all() for p in parameters]).all()):
        raise NonFinitePolicy("a policy update left inf/NaN in the trainable weights", in_forward=False)


def check_merge_allowed(sampling: SamplingSettings, load_in_4bit: bool) -> None:
    if sampling.merge_adapters_for_rollout and load_in_4bit:
        raise ValueError(
            "model.sampling.merge_adapters_for_rollout=true does not work with policy.load_in_4bit=true: "
            "B·A cannot be added to 4-bit weights without dequantising the whole model; set it to false"
        )


class Sampler:
    """Samples completions from a ``Policy`` through a rollout engine (``engine`` may be swapped between calls)."""

    def __init__(self, policy, sampling: SamplingSettings, engine: RolloutEngine | None = None) -> None:
        self.policy, self.sampling = policy, sampling
        self.engine = engine if engine is not None else GenerateEngine()

    def conversations(
        self,
        conversations: list[Conversation],
        num_generations: int,
        sampling: SamplingSettings,
        greedy: bool,
        device: torch.device,
    ) -> tuple[Rollout, int]:
        """The rollout, and how many prompts were cut to ``max_prompt_tokens``."""
        prompt_ids, prompt_mask, n_truncated = tokenize_prompts(
            self.policy.tokenizer, conversations, sampling.max_prompt_tokens, self.sampling.chat_template_kwargs
        )
        prompt_ids, prompt_mask = prompt_ids.to(device), prompt_mask.to(device)
        merge = self.sampling.merge_adapters_for_rollout and self.engine.samples_the_module
        with self.policy.merged_adapters(merge):
            try:
                rollout = self.engine.generate(self.policy, prompt_ids, prompt_mask, num_generations, sampling, greedy)
            except RuntimeError as err:
                if SAMPLING_NON_FINITE in str(err):
                    raise NonFinitePolicy("sampling met inf/NaN next-token probabilities") from err
                raise
        return rollout, n_truncated

    def prompts(
        self,
        prompts: Sequence[Prompt],
        num_generations: int,
        greedy: bool,
        device: torch.device,
        max_new_tokens: int | None = None,
    ) -> tuple[Rollout, int]:
        """G completions per prompt (plain text as a single user turn, or a conversation), sampled or greedy."""
        sampling = self.sampling if max_new_tokens is None else replace(self.sampling, max_new_tokens=max_new_tokens)
        return self.conversations([user_turn(p) for p in prompts], num_generations, sampling, greedy, device)

    @torch.no_grad()
    def chat(
        self, conversations: list[Conversation], max_new_tokens: int, batch_size: int, device: torch.device
    ) -> list[str]:
        """Greedy answers to chat conversations, ``batch_size`` at a time, in order."""
        settings = SamplingSettings(max_new_tokens=max_new_tokens, max_prompt_tokens=self.sampling.max_prompt_tokens)
        answers: list[str] = []
        for start in range(0, len(conversations), batch_size):
            chunk = conversations[start : start + batch_size]
            answers.extend(self.conversations(chunk, 1, settings, True, device)[0].completions)
        return answers

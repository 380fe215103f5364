"""The ``vllm_server`` rollout engine (placeholder until the client lands)."""

from __future__ import annotations

from maestro_lit.policy.rollout import RolloutEngine, RolloutEngineError
from maestro_lit.settings import VllmServerSettings


class VllmServerEngine(RolloutEngine):
    def __init__(self, settings: VllmServerSettings | None = None) -> None:
        self.settings = settings or VllmServerSettings()

    def generate(self, policy, prompt_ids, prompt_mask, num_generations, sampling, greedy=False):
        raise RolloutEngineError("model.rollout.engine=vllm_server is not available yet")

"""The rollout engines by name: ``model.rollout.engine`` picks the class, ``model.rollout.<engine>`` its settings.

docs/rollout.md says when to pick which. Every engine returns the ``Rollout`` of ``rollout.generate`` (G
consecutive rows per prompt) sampled from the same distribution; tests/test_rollout_engines.py checks it.
"""

from __future__ import annotations

from maestro_lit.policy.continuous_batching import ContinuousBatchingEngine
from maestro_lit.policy.fast_rollout import FastEngine
from maestro_lit.policy.rollout import GenerateEngine, RolloutEngine
from maestro_lit.policy.vllm_server import VllmServerEngine
from maestro_lit.settings import RolloutSettings

ENGINES: dict[str, type[RolloutEngine]] = {
    "generate": GenerateEngine,
    "fast": FastEngine,
    "continuous_batching": ContinuousBatchingEngine,
    "vllm_server": VllmServerEngine,
}


def build_engine(settings: RolloutSettings) -> RolloutEngine:
    """The engine ``settings.engine`` names, built with its own settings (``settings.<engine>``; generate has none)."""
    return ENGINES[settings.engine](getattr(settings, settings.engine, None))

"""Shared fixtures: the embedded tiny model (built once into the user cache) and small modules."""

from __future__ import annotations

import pytest
import torch

from maestro_lit.tiny import ensure_tiny_model


@pytest.fixture(scope="session")
def tiny_model_path() -> str:
    return str(ensure_tiny_model())


@pytest.fixture
def make_module(tiny_model_path):
    """Build a MaestroModule on the tiny model with test-sized settings."""
    from maestro_lit.rewards.diversity import DistinctN
    from maestro_lit.rewards.length import LengthBand
    from maestro_lit.settings import ModelSettings, SamplingSettings
    from maestro_lit.train.module import GRPOSettings, MaestroModule

    def build(**overrides):
        grpo_kwargs = overrides.pop("grpo", {})
        kwargs = dict(
            policy=ModelSettings(name_or_path=tiny_model_path),
            rewards=[LengthBand(), DistinctN()],
            sampling=SamplingSettings(max_new_tokens=8),
            grpo_settings=GRPOSettings(num_generations=3, **grpo_kwargs),
        )
        kwargs.update(overrides)
        return MaestroModule(**kwargs)

    return build


@pytest.fixture(scope="module")
def one_thread():
    """Tiny matmuls gain nothing from 2 threads, and on a loaded machine OpenMP spin-waits make them ~5x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

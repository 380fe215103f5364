"""Judges: the ``Judge`` contract, OpenAI-compatible HTTP, offline proxy and reward-model judges, the vote protocol."""

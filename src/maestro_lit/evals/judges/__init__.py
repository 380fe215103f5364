"""Judges for the benchmark adapters: reward model, OpenAI-compatible HTTP, offline proxy."""

from .base import GradeRequest, Judge, JudgePrompt, PairRequest
from .http import HttpJudge
from .parse import parse_score, parse_verdict
from .proxy import ProxyJudge
from .reward_model import RewardModelJudge

__all__ = [
    "GradeRequest",
    "HttpJudge",
    "Judge",
    "JudgePrompt",
    "PairRequest",
    "ProxyJudge",
    "RewardModelJudge",
    "parse_score",
    "parse_verdict",
]

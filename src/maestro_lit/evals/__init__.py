"""The seven benchmark evaluations (AlpacaEval 2.0, Arena-Hard-Auto, MT-Bench, creative
writing, EQ-Bench v2, TruthfulQA, IFEval), their judges, and the Lightning callback.

Each adapter is a class selectable by ``class_path`` in YAML; see ``callback.py``.
"""

from .alpaca_eval import AlpacaEval
from .arena_hard import ArenaHard
from .base import Benchmark, BenchmarkResult, GenerateFn
from .callback import BenchmarkCallback
from .creative_writing import CreativeWriting
from .eq_bench import EQBench
from .ifeval import IFEval
from .io import BenchmarkDataError
from .judges import HttpJudge, Judge, ProxyJudge, RewardModelJudge
from .mt_bench import MTBench
from .truthfulqa import TruthfulQA

__all__ = [
    "AlpacaEval",
    "ArenaHard",
    "Benchmark",
    "BenchmarkCallback",
    "BenchmarkDataError",
    "BenchmarkResult",
    "CreativeWriting",
    "EQBench",
    "GenerateFn",
    "HttpJudge",
    "IFEval",
    "Judge",
    "MTBench",
    "ProxyJudge",
    "RewardModelJudge",
    "TruthfulQA",
]

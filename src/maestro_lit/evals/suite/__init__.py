"""The optional benchmark suite (AlpacaEval, Arena-Hard, MT-Bench, creative writing, EQ-Bench, TruthfulQA, IFEval)."""

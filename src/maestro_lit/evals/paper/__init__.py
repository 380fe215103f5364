"""The paper's seven tasks as evaluations: their benchmark, metrics and the evaluation callback."""

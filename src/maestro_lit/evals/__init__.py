"""Evaluations: the benchmark contract and callback, the paper's seven tasks (``paper``), the optional suite
(``suite``) and the judges (``judges``).

Import from the defining module; nothing is imported here so that loading one evaluation never pulls in another.
"""

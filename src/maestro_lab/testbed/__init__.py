"""The controlled multi-objective testbed: known per-category true utility over
observable reward components, an oracle scalariser, a held-out evaluation callback and the
``python -m maestro_lab.testbed`` comparison of single / static / maestro / oracle.

Import submodules directly; nothing is imported here so the CLI's class_path lookups stay cheap.
"""

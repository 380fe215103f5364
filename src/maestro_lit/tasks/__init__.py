"""The paper's seven tasks (MAESTRO §3): NOVER-format data, converters, evaluation, results tables.

Kept import-light (the DataModule imports ``prepared``); evaluation classes live in
``maestro_lit.tasks.benchmark`` and are named by that path in YAML.
"""

from .prepared import TaskDataError, iter_prepared, read_prepared
from .specs import TASKS, TaskSpec

__all__ = ["TASKS", "TaskDataError", "TaskSpec", "iter_prepared", "read_prepared"]

"""Meta-learning: task construction and MAML on functional parameters."""

from pdmer.meta.maml import adapt, maml_task_backward
from pdmer.meta.tasks import Task, TaskSampler

__all__ = ["Task", "TaskSampler", "adapt", "maml_task_backward"]

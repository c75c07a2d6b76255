"""Meta-learning: tasks, the methods (MAML, Meta-SGD, ...) on functional parameters, the trainer."""

from pdmer.meta.batch import Song, SongBatch, collate
from pdmer.meta.callbacks import Callback, Checkpoint, ProgressBar, Validation
from pdmer.meta.learner import ADAPT_MODES, MetaLearner
from pdmer.meta.maml import adapt, maml_task_backward
from pdmer.meta.methods import METHODS, MetaLearningMethod, get_method
from pdmer.meta.tasks import Task, TaskSampler, split_tasks
from pdmer.meta.trainer import Trainer

__all__ = ["ADAPT_MODES", "METHODS", "Callback", "Checkpoint", "MetaLearner",
           "MetaLearningMethod", "ProgressBar", "Song", "SongBatch", "Task", "TaskSampler",
           "Trainer", "Validation", "adapt", "collate", "get_method", "maml_task_backward",
           "split_tasks"]

"""Meta-learning: tasks, MAML on functional parameters, the trainer; the methods are in
:mod:`pdmer.meta.methods`."""

from pdmer.meta.batch import Song, SongBatch, collate
from pdmer.meta.callbacks import Callback, Checkpoint, ProgressBar, Validation
from pdmer.meta.learner import ADAPT_MODES, MetaLearner
from pdmer.meta.maml import adapt, maml_task_backward
from pdmer.meta.tasks import Task, TaskSampler, split_tasks
from pdmer.meta.trainer import Trainer

__all__ = ["ADAPT_MODES", "Callback", "Checkpoint", "MetaLearner", "ProgressBar", "Song",
           "SongBatch", "Task", "TaskSampler", "Trainer", "Validation", "adapt", "collate",
           "maml_task_backward", "split_tasks"]

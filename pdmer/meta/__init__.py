"""Meta-learning: tasks, MAML and Meta-SGD on functional parameters, and the trainer."""

from pdmer.meta.batch import Song, SongBatch, collate
from pdmer.meta.callbacks import Callback, Checkpoint, ProgressBar, Validation
from pdmer.meta.learner import ADAPT_MODES, META_LEARNING, MetaLearner
from pdmer.meta.maml import adapt, maml_task_backward
from pdmer.meta.metasgd import LearnedInnerRates
from pdmer.meta.tasks import Task, TaskSampler, split_tasks
from pdmer.meta.trainer import Trainer

__all__ = ["ADAPT_MODES", "META_LEARNING", "Callback", "Checkpoint", "LearnedInnerRates",
           "MetaLearner", "ProgressBar", "Song", "SongBatch", "Task", "TaskSampler", "Trainer",
           "Validation", "adapt", "collate", "maml_task_backward", "split_tasks"]

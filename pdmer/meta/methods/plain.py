"""Plain supervised training on the meta-learning tasks' songs (no inner loop)."""

from __future__ import annotations

from pdmer.meta.methods.base import MetaLearningMethod


class PlainTraining(MetaLearningMethod):
    """Train on each task's songs as one batch; personalization then fine-tunes.

    The fair competitor of the meta-learning methods: the same network,
    tasks and batches, the mean loss over all songs, and at personalization
    the same SGD steps on the listener's song.
    """

    name = "none"
    inner_loop = False

    def task_backward(self, learner, support, query, steps, weight):
        # ``support`` holds all the task's songs; there is no query set.
        loss = learner.query_loss(dict(learner.network.named_parameters()), support)
        (loss * weight).backward()
        return float(loss.detach())

    def tasks_backward(self, learner, tasks, weight):
        return learner.vmapped_backward(tasks, "none", weight)

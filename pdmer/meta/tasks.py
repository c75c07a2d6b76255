"""Task construction and sampling for meta-learning.

A task is a group of training rows that share one perception of music: one
annotator's songs (the paper's personalized task construction) or, for the
traditional construction, the whole pool of mean-label songs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Task:
    """Row indices of one support set and its query set."""

    support: np.ndarray
    query: np.ndarray


class TaskSampler:
    """Draws support/query tasks from groups of training rows.

    Parameters
    ----------
    groups : dict of str -> ndarray of int
        Row indices per task group (per annotator, or one group holding every
        song for traditional meta-learning).
    n_support, n_query : int
        Songs per support and query set. Query songs are drawn from the
        group's other songs, with replacement when it has too few (as the
        reference implementation does).
    """

    def __init__(self, groups: dict, n_support: int, n_query: int):
        self.groups = {k: np.asarray(v, dtype=np.int64) for k, v in groups.items()}
        self.keys = sorted(self.groups)
        self.n_support = n_support
        self.n_query = n_query
        small = [k for k in self.keys if len(self.groups[k]) <= n_support]
        if small:
            raise ValueError(
                f"{len(small)} task group(s) have {n_support} song(s) or fewer, so "
                f"nothing is left for a query set (e.g. {', '.join(small[:5])}). "
                "Every annotator needs at least n_support + 1 songs: drop "
                "annotators with fewer songs, or use tasks='song'."
            )

    def sample(self, n_tasks: int, rng: np.random.Generator) -> list[Task]:
        """``n_tasks`` tasks; groups are drawn without replacement when possible."""
        replace = n_tasks > len(self.keys)
        chosen = rng.choice(len(self.keys), size=n_tasks, replace=replace)
        tasks = []
        for k in chosen:
            rows = rng.permutation(self.groups[self.keys[k]])
            support, rest = rows[: self.n_support], rows[self.n_support:]
            query = rng.choice(rest, size=self.n_query, replace=len(rest) < self.n_query)
            tasks.append(Task(support, query))
        return tasks

"""Task construction and sampling for meta-learning.

A task is a group of training rows that share one perception of music: one
annotator's songs (the paper's personalized task construction) or, for the
traditional construction, the whole pool of mean-label songs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pdmer.evaluation.protocol import Episode, plan_episodes


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


def split_tasks(n_rows, annotators, validation_fraction, n_support, seed):
    """Training task groups, and validation episodes held out of the training data.

    With annotators, ``validation_fraction`` of them (those with two songs
    or more) are held out; each is adapted and scored as the evaluation
    protocol does (:func:`pdmer.evaluation.plan_episodes` picks their
    support song). Without, held-out songs are scored as they are.

    Parameters
    ----------
    n_rows : int
    annotators : ndarray of str or None
        Annotator of every row; None for one pool of (mean-label) songs.
    validation_fraction : float
    n_support : int
        Support songs per task (training needs ``n_support + 1`` songs).
    seed : int

    Returns
    -------
    groups : dict of str -> ndarray of int
        Training rows per task group (:class:`TaskSampler`'s input).
    episodes : list of Episode
        Validation episodes (empty without a validation split).
    """
    rng = np.random.default_rng(seed)
    if annotators is None:
        order = rng.permutation(n_rows)
        n_val = int(np.ceil(validation_fraction * n_rows))
        if validation_fraction == 0 or n_rows - n_val < n_support + 1:
            n_val = 0
        episodes = ([Episode("songs", (), None, tuple(int(i) for i in np.sort(order[:n_val])))]
                    if n_val else [])
        return {"songs": np.sort(order[n_val:])}, episodes
    ids = np.unique(annotators)
    counts = {a: int(np.sum(annotators == a)) for a in ids}
    n_val = int(np.ceil(validation_fraction * len(ids)))
    eligible = [a for a in ids if counts[a] >= 2]
    if validation_fraction == 0 or len(ids) - n_val < 2 or len(eligible) < n_val:
        n_val = 0
    held = set(rng.choice(eligible, size=n_val, replace=False)) if n_val else set()
    groups = {a: np.flatnonzero(annotators == a) for a in ids if a not in held}
    if not held:
        return groups, []
    rows = np.flatnonzero(np.isin(annotators, list(held)))
    episodes = [Episode(e.listener, tuple(int(rows[i]) for i in e.support), e.support_frames,
                        tuple(int(rows[i]) for i in e.query), e.query_start)
                for e in plan_episodes(annotators[rows], n_support=1, random_state=seed)]
    return groups, episodes

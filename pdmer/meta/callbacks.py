"""Callbacks of the :class:`~pdmer.meta.trainer.Trainer`.

:class:`Validation` scores the model every few episodes, keeps the best
state and stops when it stops improving; :class:`Checkpoint` saves and
resumes the whole training state; :class:`ProgressBar` shows episodes.
Each callback's own state is part of the checkpoint (``state_dict``), so a
resumed run equals an uninterrupted one. On several processes
(``trainer.distributed``) validation decisions follow the first process's
score, only the first process writes the checkpoint and shows the bar, and
every process resumes from the same checkpoint.
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import time

import torch
from tqdm.auto import tqdm

from pdmer.files import atomic_write


class Callback:
    """Hooks called by the trainer; the defaults do nothing."""

    def on_train_begin(self, trainer) -> None:
        pass

    def on_episode_end(self, trainer, episode: int) -> None:
        pass

    def on_train_end(self, trainer) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class Validation(Callback):
    """Validate every ``interval`` episodes, keep the best state, stop early.

    Parameters
    ----------
    score : callable
        ``score() -> float`` (higher is better) of the network as it is.
    interval : int
        Episodes between validations; the last episode is always validated.
    patience : int, default=0
        Stop after this many validations in a row without a better score;
        0 never stops early.

    Attributes
    ----------
    best_score : float
        Best score so far (``-inf`` before the first validation).
    best_episode : int or None
        Episode of the best score.
    stopped_early : bool
        Whether training stopped for lack of improvement.
    """

    def __init__(self, score, interval, patience=0):
        self.score = score
        self.interval = interval
        self.patience = patience
        self.best_score = -math.inf
        self.best_episode = None
        self.best_state = None
        self.waited = 0
        self.stopped_early = False

    def on_train_begin(self, trainer):
        trainer.history.setdefault("validation_episode", [])
        trainer.history.setdefault("validation_ccc", [])

    def on_episode_end(self, trainer, episode):
        if (episode + 1) % self.interval and not trainer.last_episode:
            return
        score = float(self.score())
        if trainer.distributed is not None:
            # Every process takes the same decisions (and keeps the same state).
            score = trainer.distributed.broadcast(score)
        trainer.history["validation_episode"].append(episode)
        trainer.history["validation_ccc"].append(score)
        if score > self.best_score:
            self.best_score, self.best_episode, self.waited = score, episode, 0
            self.best_state = {k: v.detach().clone() for k, v in
                               trainer.network.state_dict().items()}
        else:
            self.waited += 1
            if self.patience and self.waited >= self.patience:
                trainer.stop = self.stopped_early = True

    def on_train_end(self, trainer):
        if self.best_state is not None:
            trainer.network.load_state_dict(self.best_state)

    def state_dict(self):
        return {"best_score": self.best_score, "best_episode": self.best_episode,
                "best_state": self.best_state, "waited": self.waited,
                "stopped_early": self.stopped_early}

    def load_state_dict(self, state):
        self.best_score = float(state["best_score"])
        self.best_episode = state["best_episode"]
        self.best_state = state["best_state"]
        self.waited = int(state["waited"])
        self.stopped_early = bool(state["stopped_early"])


class ProgressBar(Callback):
    """A tqdm bar of episodes with the running loss, the last validation score and time left.

    Parameters
    ----------
    description : str, default="training"
    enabled : bool, default=True
    delay : float, default=0
        Seconds before the bar appears: a run that ends sooner shows none.
    """

    def __init__(self, description="training", enabled=True, delay=0.0):
        self.description = description
        self.enabled = enabled
        self.delay = delay
        self.bar = None

    def on_train_begin(self, trainer):
        self.bar = tqdm(total=trainer.n_episodes, initial=trainer.episode,
                        disable=not (self.enabled and trainer.is_main),
                        desc=self.description, unit="episode", delay=self.delay)

    def on_episode_end(self, trainer, episode):
        postfix = {"loss": f"{trainer.history['loss'][-1]:.4f}"}
        validated = trainer.history.get("validation_episode") or [None]
        if validated[-1] == episode:
            postfix["val_ccc"] = f"{trainer.history['validation_ccc'][-1]:.3f}"
        self.bar.set_postfix(postfix)
        self.bar.update(1)

    def on_train_end(self, trainer):
        self.bar.close()


def run_digest(settings: dict, tensors) -> str:
    """A digest of training settings and data, to recognise a run's checkpoint."""
    digest = hashlib.sha256(json.dumps({k: repr(v) for k, v in settings.items()},
                                       sort_keys=True).encode())
    for tensor in tensors:
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


class Checkpoint(Callback):
    """Save the training state every ``interval`` episodes; resume from it.

    A run resumes from the checkpoint at ``path`` when it was written by a
    run with the same settings and data (the ``run_digest``) that had not
    gone further than ``n_episodes``; a longer run's checkpoint or another
    run's is refused with a ValueError rather than silently used.

    Temporary files left beside the checkpoint by a run killed while
    writing it are removed when training begins.

    On several processes only the first one (rank 0) writes; every process
    reads the checkpoint when training begins, so all of them must see it
    at the same path (shared storage across machines).

    Parameters
    ----------
    path : str or os.PathLike
    interval : int
        Episodes between saves; the last episode is always saved.
    run_digest : str
        Identity of the run's settings and data (:func:`run_digest`).
    extra : dict, optional
        Saved with the state (e.g. the seed of a run without random_state).
    verbose : bool, default=False
        Say when resuming or cleaning up.
    """

    def __init__(self, path, interval, run_digest, extra=None, verbose=False):
        self.path = os.fspath(path)
        self.interval = interval
        self.run_digest = run_digest
        self.extra = dict(extra or {})
        self.verbose = verbose
        self.started = time.time()

    @staticmethod
    def read(path, device="cpu") -> dict | None:
        """The checkpoint's contents, or None if there is none."""
        if not path or not os.path.exists(path):
            return None
        return torch.load(path, map_location=device, weights_only=True)

    def on_train_begin(self, trainer):
        if trainer.is_main:
            self._remove_orphans()
        try:
            state, error = self._resumable_state(trainer), None
        except ValueError as exc:
            state, error = None, exc
        processes = trainer.distributed
        if processes is not None:
            processes.agree(error)
            done = processes.gather(-1 if state is None else int(state["episode"]))
            if len(set(done)) > 1:
                raise ValueError(
                    f"The training processes found different checkpoints at {self.path} "
                    f"(episodes done: {done}, -1 = none): every process must see the same "
                    "file. Put checkpoint_path on storage shared by all machines.")
        elif error is not None:
            raise error
        if state is None:
            return
        trainer.load_state_dict(state)
        if self.verbose and trainer.is_main:
            tqdm.write(f"Resuming from {self.path} at episode {int(state['episode'])}.")

    def _resumable_state(self, trainer) -> dict | None:
        """The checkpoint's state if it belongs to this run; a ValueError if it belongs to another."""
        state = self.read(self.path, next(trainer.network.parameters()).device)
        if state is None:
            return None
        if state.get("run_digest") != self.run_digest:
            raise ValueError(
                f"The checkpoint {self.path} belongs to a run with other parameters or data. "
                "Delete it or choose another checkpoint_path.")
        done = int(state["episode"])
        if done > trainer.n_episodes:
            raise ValueError(
                f"The checkpoint {self.path} holds {done} episodes of training, more than "
                f"n_episodes={trainer.n_episodes}: it belongs to a longer run. Delete it, "
                f"choose another checkpoint_path, or set n_episodes >= {done}.")
        return state

    def on_episode_end(self, trainer, episode):
        if trainer.is_main and ((episode + 1) % self.interval == 0 or trainer.last_episode):
            self.save(trainer)

    def save(self, trainer):
        """Write the trainer's state atomically (a temporary file, then a rename)."""
        state = {**trainer.state_dict(), **self.extra, "run_digest": self.run_digest}
        atomic_write(self.path, lambda tmp: torch.save(state, tmp))

    def _remove_orphans(self):
        """Delete temporary files of interrupted checkpoint writes beside ``path``.

        Only names that :func:`pdmer.files.atomic_write` gives its temporary
        files are touched: ``.<checkpoint name>.*.tmp`` (this checkpoint's
        own) older than this run, and ``tmp*.tmp`` (the generic pattern,
        which another program's file could match) older than this run by
        more than a minute, so a write in progress is never removed.
        """
        folder = os.path.dirname(os.path.abspath(self.path))
        name = os.path.basename(self.path)
        own = glob.glob(os.path.join(glob.escape(folder), f".{glob.escape(name)}.*.tmp"))
        generic = glob.glob(os.path.join(glob.escape(folder), "tmp*.tmp"))
        removed = []
        for paths, margin in ((own, 0.0), (generic, 60.0)):
            for orphan in paths:
                try:
                    if os.path.isfile(orphan) and os.path.getmtime(orphan) < self.started - margin:
                        os.remove(orphan)
                        removed.append(orphan)
                except OSError:  # gone already, or not ours to remove
                    continue
        if removed and self.verbose:
            tqdm.write(f"Removed {len(removed)} temporary file(s) of an interrupted "
                       f"checkpoint write in {folder}.")

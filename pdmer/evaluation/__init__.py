"""Evaluation: the personalized protocol every pdmer table and score uses."""

from pdmer.evaluation.protocol import PROTOCOLS, Episode, plan_episodes, run_episodes

__all__ = ["PROTOCOLS", "Episode", "plan_episodes", "run_episodes"]

"""Evaluation: the personalized protocol every pdmer table and score uses.

:func:`plan_episodes` is the one place that picks the support songs a
held-out listener adapts on and the songs they are scored on;
:func:`run_episodes` adapts and predicts without changing the model;
:func:`personalized_score`, :func:`personalized_scorer` and
:func:`cross_validate_personalized` score with them. See the "Evaluation"
page of the user guide.
"""

from pdmer.evaluation.crossval import (
    PersonalizedScorer,
    cross_validate_personalized,
    personalized_scorer,
)
from pdmer.evaluation.diagnostics import (
    COLLAPSE_CCC,
    COLLAPSE_RATIO,
    collapse_problems,
    prediction_spread,
)
from pdmer.evaluation.personalized import personalized_score, score_episodes
from pdmer.evaluation.protocol import PROTOCOLS, Episode, plan_episodes, run_episodes, scored_rows

__all__ = ["COLLAPSE_CCC", "COLLAPSE_RATIO", "PROTOCOLS", "Episode", "PersonalizedScorer",
           "collapse_problems", "cross_validate_personalized", "personalized_score",
           "personalized_scorer",
           "plan_episodes", "prediction_spread", "run_episodes", "score_episodes",
           "scored_rows"]

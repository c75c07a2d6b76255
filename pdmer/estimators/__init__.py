"""scikit-learn estimators: DSAML, its baselines and the shared estimator base."""

from pdmer.estimators.base import BaseEmotionRegressor
from pdmer.estimators.baselines import (
    CRNNRegressor,
    DAMFFRegressor,
    DNNRegressor,
    MCRNNRegressor,
)
from pdmer.estimators.dsaml import DSAMLRegressor
from pdmer.estimators.exceptions import CollapseWarning, FrameOffsetWarning, SlowTrainingWarning
from pdmer.estimators.listener import ListenerAdaptation
from pdmer.estimators.sizes import TRAINING_PRESETS

__all__ = ["BaseEmotionRegressor", "CRNNRegressor", "CollapseWarning", "DAMFFRegressor",
           "DNNRegressor", "DSAMLRegressor", "FrameOffsetWarning", "ListenerAdaptation",
           "MCRNNRegressor", "SlowTrainingWarning", "TRAINING_PRESETS"]

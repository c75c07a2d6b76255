"""scikit-learn estimators: DSAML, its baselines and the shared estimator base."""

from pdmer.estimators.base import BaseEmotionRegressor
from pdmer.estimators.baselines import (
    CRNNRegressor,
    DAMFFRegressor,
    DNNRegressor,
    MCRNNRegressor,
)
from pdmer.estimators.dsaml import DSAMLRegressor
from pdmer.estimators.listener import ListenerAdaptation

__all__ = ["BaseEmotionRegressor", "CRNNRegressor", "DAMFFRegressor", "DNNRegressor",
           "DSAMLRegressor", "ListenerAdaptation", "MCRNNRegressor"]

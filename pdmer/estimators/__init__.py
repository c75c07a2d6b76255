"""scikit-learn estimators: DSAML and the shared estimator base."""

from pdmer.estimators.base import BaseEmotionRegressor
from pdmer.estimators.dsaml import DSAMLRegressor
from pdmer.estimators.listener import ListenerAdaptation

__all__ = ["BaseEmotionRegressor", "DSAMLRegressor", "ListenerAdaptation"]

"""pdmer: personalized dynamic music emotion recognition.

Predicts arousal and valence every 0.5 s and adapts to one listener from a
single annotated song (DSAML, AAAI 2025, and baselines).
"""

from importlib.metadata import PackageNotFoundError, version

from pdmer.estimators import (
    CRNNRegressor,
    DAMFFRegressor,
    DNNRegressor,
    DSAMLRegressor,
    ListenerAdaptation,
    MCRNNRegressor,
)
from pdmer.estimators.persistence import load
from pdmer.features import AudioFeatures, SongFeatures
from pdmer.labels import AROUSAL, DIMENSIONS, FRAME_RATE, FRAME_SECONDS, VALENCE

try:
    __version__ = version("pdmer")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = [
    "AROUSAL",
    "DIMENSIONS",
    "FRAME_RATE",
    "FRAME_SECONDS",
    "VALENCE",
    "AudioFeatures",
    "CRNNRegressor",
    "DAMFFRegressor",
    "DNNRegressor",
    "DSAMLRegressor",
    "ListenerAdaptation",
    "MCRNNRegressor",
    "SongFeatures",
    "load",
    "__version__",
]

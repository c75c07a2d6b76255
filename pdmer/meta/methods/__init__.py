"""Meta-learning methods, one class per method and one module per family.

An estimator's ``meta_learning`` takes a method's registered name or an
instance (whose own settings then apply)::

    DSAMLRegressor(meta_learning="maml")
    DSAMLRegressor(meta_learning=CalibratedFOMAML(strength=20.0))

Adding a method is adding a module here with a
:class:`~pdmer.meta.methods.base.MetaLearningMethod` subclass and its line
in :data:`METHODS`.
"""

from __future__ import annotations

from sklearn.base import clone

from pdmer.meta.methods.base import MetaLearningMethod
from pdmer.meta.methods.calibrate_then_adapt import CalibrateThenAdapt
from pdmer.meta.methods.calibrated import CalibratedFOMAML
from pdmer.meta.methods.maml import FOMAML, MAML
from pdmer.meta.methods.metasgd import LearnedInnerRates, MetaSGD
from pdmer.meta.methods.plain import PlainTraining

METHODS = {cls.name: cls for cls in (FOMAML, MAML, MetaSGD, PlainTraining, CalibratedFOMAML,
                                      CalibrateThenAdapt)}
"""Registered methods by name (``meta_learning="..."``)."""

__all__ = ["CalibrateThenAdapt", "CalibratedFOMAML", "FOMAML", "MAML", "METHODS",
           "LearnedInnerRates", "MetaLearningMethod", "MetaSGD", "PlainTraining", "get_method",
           "method_to_json"]


def get_method(method) -> MetaLearningMethod:
    """A fresh method from a registered name, a copy of an instance, or its JSON form.

    Raises
    ------
    ValueError
        ``method`` is none of these.
    """
    if isinstance(method, MetaLearningMethod):
        return clone(method)
    if isinstance(method, dict) and set(method) == {"name", "params"}:
        if method["name"] in METHODS:
            return METHODS[method["name"]](**method["params"])
        method = method["name"]
    if isinstance(method, str) and method in METHODS:
        return METHODS[method]()
    raise ValueError(f"meta_learning must be one of {', '.join(METHODS)} or a "
                     f"MetaLearningMethod instance; got {method!r}.")


def method_to_json(method: MetaLearningMethod) -> dict:
    """``{"name": ..., "params": {...}}``: what model files store (:func:`get_method` reads it)."""
    return {"name": method.name, "params": method.get_params(deep=False)}

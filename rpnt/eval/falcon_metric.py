"""FALCON's own regression metric over our predictions, where the ``falcon`` extra is
installed: ``falcon_challenge.evaluator.FalconEvaluator.compute_metrics_regression``
(R² of each session, variance-weighted over its covariates, via scikit-learn).

A metrics record whose ``r2`` carries ``variance_weighted`` (a FALCON store) gets that
value from the official evaluator, checked against rpnt's own
(:func:`rpnt.scoring.metrics.r2_variance_weighted`) to :data:`TOLERANCE`, and says so in
``r2_source``. Without the package the record keeps rpnt's value and says that instead.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from typing import Any

import numpy as np

from rpnt.errors import RpntError

TOLERANCE = 1e-9  #: largest allowed |official - ours|
OURS = "rpnt.scoring.metrics.r2_variance_weighted (falcon-challenge not installed)"


def falcon_available() -> bool:
    """True when ``falcon_challenge`` (the ``falcon`` extra) can be imported."""
    try:
        return importlib.util.find_spec("falcon_challenge") is not None
    except (ImportError, ValueError):
        return False


def official_r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """FALCON's R² of one session: (n, D) targets and predictions on its scored bins."""
    # here: an optional package that imports torch, hydra and scikit-learn
    from falcon_challenge.evaluator import FalconEvaluator

    n = int(y_true.shape[0])
    res = FalconEvaluator.compute_metrics_regression(
        np.asarray(y_pred, np.float64), np.asarray(y_true, np.float64), np.ones(n, bool),
        {"session": [n]})
    return float(res["R2 Mean"])


def apply_official(record: dict[str, Any], y_true: np.ndarray, y_pred: np.ndarray) -> None:
    """Put the official value in ``record["r2"]["variance_weighted"]`` (in place) when the
    package is installed and the record has that key; record where the value came from."""
    r2 = record.get("r2")
    if not isinstance(r2, dict) or "variance_weighted" not in r2:
        return
    if not falcon_available():
        record["r2_source"] = OURS
        return
    official = official_r2(y_true, y_pred)
    ours = float(r2["variance_weighted"])
    if not (abs(official - ours) <= TOLERANCE or (np.isnan(ours) and np.isnan(official))):
        raise RpntError(f"session {record.get('session')}: FALCON's evaluator gives R² "
                        f"{official!r}, rpnt {ours!r}; they must agree to {TOLERANCE:g}: "
                        "report this as a bug")
    r2["variance_weighted"] = official
    version = importlib.metadata.version("falcon-challenge")
    record["r2_source"] = ("falcon_challenge.evaluator.FalconEvaluator."
                           f"compute_metrics_regression (falcon-challenge {version})")

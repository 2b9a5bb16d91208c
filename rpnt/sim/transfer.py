"""Does a simulated dataset let pretraining pay? Cross-session Wiener transfer.

Sessions of one simulated subject record random subsets of one population of neurons
(``unit_population_index`` in the ground truth), whose tuning drifts with the date and
shifts with the task. :func:`wiener_transfer` fits a lagged ridge (Wiener) decoder on the
units a source session shares with a target session, on the source's training trials,
and scores it unchanged on the target's test trials, beside the same decoder fit on the
target's own training trials. Transfer far above 0 says the sessions share structure a
pretrained model can carry over; transfer well below the within-session score says
sessions differ enough that one session's data do not suffice (more, and more varied,
pretraining data can matter). :func:`transfer_table` runs every ordered pair of sessions
of one subject (``rpnt transfer``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rpnt.data.session import SessionData
from rpnt.errors import RpntError
from rpnt.linear import fit_lagged_ridge
from rpnt.scoring.metrics import r2_report
from rpnt.scoring.stitch import scored_mask
from rpnt.sim.ceiling import _truth_columns, load_truth

#: bins of history of the Wiener filter (the benchmark's wiener baseline: 5)
TRANSFER_LAGS = 5


def population_index(session: SessionData, truth_npz_path: str | Path) -> np.ndarray:
    """(n_unit,) the population neuron each unit of ``session`` records."""
    path = Path(truth_npz_path)
    truth = load_truth(path, keys=("unit_population_index", "session_id"))
    if "unit_population_index" not in truth:
        raise RpntError(f"{path}: ground truth without unit_population_index; regenerate "
                        "it with rpnt simulate")
    if str(truth["session_id"]) != session.session:
        raise RpntError(f"{path}: ground truth of {truth['session_id']}, but the store holds "
                        f"{session.session}; pass the matching truth file")
    pop = np.asarray(truth["unit_population_index"])
    return pop[_truth_columns(session, pop.size, path)]


def _score(x: np.ndarray, fit_on: SessionData, x_test: np.ndarray, test_on: SessionData,
           lags: int) -> float:
    model = fit_lagged_ridge(x, fit_on.velocity, fit_on.split_bins("train"),
                             fit_on.split_bins("valid"), lags=lags)
    test = scored_mask(test_on, "test")
    return float(r2_report(test_on.velocity[test], model.predict(x_test)[test])["mean"])


def wiener_transfer(source: SessionData, target: SessionData, pop_source: np.ndarray,
                    pop_target: np.ndarray, lags: int = TRANSFER_LAGS) -> dict[str, Any]:
    """Test R² on ``target`` of a Wiener filter fit on ``source`` (``transfer``) and on
    ``target`` itself (``within``), both on the units the two sessions share (matched by
    population index)."""
    shared, i_s, i_t = np.intersect1d(pop_source, pop_target, return_indices=True)
    out: dict[str, Any] = {
        "source": source.session, "target": target.session, "shared_units": int(shared.size),
        "days_apart": (dt.date.fromisoformat(target.recording_date[:10])
                       - dt.date.fromisoformat(source.recording_date[:10])).days,
        "same_task": source.task == target.task}
    if shared.size < 2:
        return {**out, "transfer": float("nan"), "within": float("nan")}
    xs = source.spike_counts[:, i_s].astype(np.float64)
    xt = target.spike_counts[:, i_t].astype(np.float64)
    return {**out, "transfer": _score(xs, source, xt, target, lags),
            "within": _score(xt, target, xt, target, lags)}


def transfer_table(sessions: Sequence[SessionData], pops: Sequence[np.ndarray],
                   lags: int = TRANSFER_LAGS) -> list[dict[str, Any]]:
    """:func:`wiener_transfer` for every ordered pair of sessions of one subject."""
    rows = []
    for a, pa in zip(sessions, pops, strict=True):
        for b, pb in zip(sessions, pops, strict=True):
            if a.session != b.session and a.subject == b.subject:
                rows.append({"subject": a.subject, **wiener_transfer(a, b, pa, pb, lags)})
    return rows

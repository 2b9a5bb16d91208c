"""Label budgets: which labelled training trials of a target session a decoder may use.

The label-efficiency benchmark trains every decoder at a budget of ``k`` labelled trials
on the *same* ``k`` trials. :func:`budget_order` ranks a session's eligible training
trials once per seed; the budget of ``k`` trials is the first ``k`` of that ranking, so
budgets are nested (the 10 trials hold the 5) and every decoder that asks for
``(session, seed, k)`` gets the same trials. ``all`` is every training trial (the
training set of the default benchmark).

The ranking is stratified by condition (``SessionData.trial_condition``, kept by ingest:
the target of a center-out trial, the direction octant of each reach of a random-target
trial). Starting from a seeded random order of the eligible trials, it repeatedly takes
the first trial whose conditions have been chosen least often so far (mean count over its
conditions). Center-out trials therefore cover every target before any repeats, and
random-target reaches spread over the directions. A store without conditions (ingested
before they were kept) gives the seeded random order. Trials without a condition in a
session that has them come last.

Eligible: training trials (``trial_split == "train"``) holding at least ``min_bins``
consecutive training bins with finite velocity, so that a window-based decoder can train
on each chosen trial.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from rpnt.data.session import SessionData
from rpnt.data.windows import valid_window_starts
from rpnt.errors import RpntError

log = logging.getLogger(__name__)

#: The budget that means every training trial.
ALL = "all"


def parse_budget(value: str | int) -> int | None:
    """``"all"`` -> None (every training trial); a positive integer (or its string) -> k."""
    if str(value) == ALL:
        return None
    try:
        k = int(value)
    except (TypeError, ValueError):
        k = 0
    if k < 1 or str(k) != str(value).strip():
        raise RpntError(f"label budget {value!r} must be a positive number of trials or "
                        f"'{ALL}'")
    return k


def eligible_trials(session: SessionData, min_bins: int) -> np.ndarray:
    """Indices of training trials holding ``min_bins`` consecutive labelled training bins."""
    ok = session.split_bins("train")
    trials = np.flatnonzero(session.trial_split == "train")
    keep = [i for i in trials
            if valid_window_starts(ok & session.bins_of_trials(np.array([i])), min_bins).size]
    return np.asarray(keep, dtype=np.int64)


def budget_order(session: SessionData, seed: int, min_bins: int) -> np.ndarray:
    """The eligible training trials of ``session``, ranked for budgets (module docstring)."""
    trials = eligible_trials(session, min_bins)
    if trials.size == 0:
        raise RpntError(f"session {session.session}: no training trial holds {min_bins} "
                        "consecutive bins with velocity; no label budget can be drawn "
                        "(lower labels.min_bins)")
    order = np.random.default_rng(seed).permutation(trials)
    cond = session.trial_condition
    if cond is None or not (cond[trials] >= 0).any():
        if cond is None:
            log.warning("%s: the store has no trial conditions (ingested by an older rpnt); "
                        "label budgets are drawn without stratification", session.session)
        return order
    labels = np.asarray(cond, dtype=np.int64).reshape(cond.shape[0], -1)[order]  # (n, k)
    known = labels >= 0
    count = np.zeros(int(labels.max()) + 1)
    left = np.ones(order.size, dtype=bool)
    ranked = []
    for _ in range(order.size):
        # mean count of each remaining trial's conditions; unknown-only trials last
        seen = np.where(known, count[np.where(known, labels, 0)], 0.0).sum(1)
        n = known.sum(1)
        cost = np.where(n > 0, seen / np.maximum(n, 1), np.inf)
        cost[~left] = np.nan
        j = int(np.nanargmin(cost))  # the first of the cheapest, in the seeded order
        left[j] = False
        ranked.append(order[j])
        np.add.at(count, labels[j][known[j]], 1)
    return np.asarray(ranked, dtype=np.int64)


@dataclass
class Budget:
    """The labelled bins of one budget: what a decoder may fit and normalise on."""

    budget: str  #: "all" or the number of trials
    bins: np.ndarray  #: (n_time,) bool labelled training bins of the chosen trials
    trials: np.ndarray  #: indices of the chosen trials (sorted)

    def info(self) -> dict:
        """JSON-ready record for the decoder's meta.json."""
        return {"budget": self.budget, "n_trials_used": int(self.trials.size),
                "n_bins_used": int(self.bins.sum()), "trials": self.trials.tolist()}


def budget_bins(session: SessionData, budget: str | int, seed: int,
                min_bins: int) -> Budget:
    """The training bins of budget ``budget`` (``"all"`` or k trials) drawn with ``seed``.

    ``all``: every training bin with velocity (:meth:`SessionData.split_bins`). ``k``: the
    first k trials of :func:`budget_order`; an RpntError when the session has fewer than k
    eligible trials (a smaller cell labelled k would mislead).
    """
    k = parse_budget(budget)
    train = session.split_bins("train")
    if k is None:
        return Budget(ALL, train, np.flatnonzero(session.trial_split == "train"))
    order = budget_order(session, seed, min_bins)
    if k > order.size:
        raise RpntError(f"session {session.session}: label budget {k} exceeds its "
                        f"{order.size} eligible training trials; use a smaller budget")
    chosen = np.sort(order[:k])
    return Budget(str(k), train & session.bins_of_trials(chosen), chosen)

"""Scenarios: which sessions are decoded, and what pretraining must never see.

Config (docs/architecture.md "Scenarios")::

    scenarios:
      cross_site:
        target:  {subject: [M], task: [center_out], area: [PMd]}
        holdout: {area: [PMd]}          # optional; defaults to target
        pretrain_on_target_train: false # optional; true = the paper's looser variant
        n_pretrain_sessions: 4          # optional; pretrain on 4 of the allowed sessions
        pretrain_manifests: [B.tsv]     # optional; other datasets' sessions join the corpus

Selector keys: ``dataset``, ``session``, ``subject``, ``task``, ``date_from``, ``date_to``,
``split`` (session level: keys are ANDed, list values ORed, dates inclusive ISO strings;
``split`` is a FALCON file split, ``held_in_calib``, ``held_in_minival`` or
``held_out_calib``, and ``held_in`` / ``held_out`` select every split of that side) and
``area``, ``site`` (unit level). Rules implemented by :func:`resolve_scenario`:

- target sessions = sessions matching the target's session-level keys;
- a session matching the holdout's session-level keys (when it has any) is dropped from
  pretraining entirely, train trials included (stricter than the released code);
- the target sessions themselves never enter pretraining, even when the holdout names
  only unit-level keys; with ``pretrain_on_target_train: true`` they do, but only with
  their training bins (the pretraining sampler reads training bins only) - the paper's
  looser variant;
- unit-level holdout keys remove matching units from every pretraining session; unit-level
  target keys select the units used on target sessions;
- ``n_pretrain_sessions: n`` (the scaling benchmark) keeps n of the allowed non-target
  pretraining sessions, drawn with the pretraining's seed (:meth:`Scenario.limited`): the
  first n of one seeded permutation, so for one seed the 1 are among the 2, the 2 among
  the 4, and so on. Every rule above still applies: the n come from the allowed ones.

The session table may be a corpus of several datasets (:func:`rpnt.manifest.read_corpus`;
``pretrain_manifests`` names the manifests of the other datasets, which the pretraining
job reads besides the benchmark's own): the rules apply to every session of every
dataset (a target subject's sessions in a second dataset are held out too).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from rpnt.data.session import SessionData
from rpnt.errors import RpntError

TASK_CODES = {"CO": "center_out", "RT": "random_target"}
SESSION_KEYS = ("dataset", "session", "subject", "task", "date_from", "date_to", "split")
UNIT_KEYS = ("area", "site")
SCENARIO_KEYS = ("target", "holdout", "pretrain_on_target_train", "n_pretrain_sessions",
                 "pretrain_manifests")
_SESSION_RE = re.compile(r"^sub-(?P<subject>[^_]+)_ses-(?P<task>[A-Za-z]+)-(?P<date>\d{8})")


def parse_session_id(session_id: str) -> dict[str, str]:
    """``sub-C_ses-CO-20160909`` -> {subject: C, task: center_out, date: 2016-09-09}."""
    m = _SESSION_RE.match(session_id)
    if not m:
        raise RpntError(f"session id {session_id!r} does not follow "
                        "sub-<S>_ses-<CO|RT>-<YYYYMMDD>; rename it or use a manifest")
    d = m["date"]
    return {"subject": m["subject"], "task": TASK_CODES.get(m["task"], m["task"]),
            "date": f"{d[:4]}-{d[4:6]}-{d[6:]}"}


def plan_sessions(session_ids: Iterable[str], dataset: str = "") -> pd.DataFrame:
    """A session table (dataset, session, subject, task, date) from session ids alone.

    Lets the workflow resolve scenarios before anything is ingested.
    """
    rows = [{"dataset": dataset, "session": s, **parse_session_id(s)} for s in session_ids]
    return pd.DataFrame(rows, columns=["dataset", "session", "subject", "task", "date"])


@dataclass(frozen=True)
class UnitFilter:
    """Unit-level selection: keep units whose area/site match (``exclude=False``) or
    drop them (``exclude=True``). Empty ``areas`` and ``sites`` = no constraint."""

    areas: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    exclude: bool = False

    @property
    def active(self) -> bool:
        return bool(self.areas or self.sites)

    def mask(self, session: SessionData) -> np.ndarray:
        """(n_unit,) bool: units kept."""
        hit = np.zeros(session.n_unit, bool)
        if self.areas:
            hit |= np.isin(session.unit_area.astype(str), list(self.areas))
        if self.sites:
            hit |= np.isin(session.unit_site.astype(str), list(self.sites))
        if not self.active:
            return np.ones(session.n_unit, bool)
        return ~hit if self.exclude else hit

    def apply(self, session: SessionData) -> SessionData:
        """The session restricted to the kept units (RpntError when none is left)."""
        if not self.active:
            return session
        keep = self.mask(session)
        if not keep.any():
            what = "excluding" if self.exclude else "selecting"
            raise RpntError(f"session {session.session}: no unit left after {what} "
                            f"areas {list(self.areas)} / sites {list(self.sites)}; fix the "
                            "scenario's unit-level keys")
        return session.select_units(keep)

    def to_dict(self) -> dict[str, Any]:
        return {"areas": list(self.areas), "sites": list(self.sites), "exclude": self.exclude}


@dataclass
class Scenario:
    """A resolved scenario (session ids in table order)."""

    name: str
    pretrain_sessions: list[str]
    target_sessions: list[str]
    pretrain_unit_filter: UnitFilter = field(default_factory=UnitFilter)
    target_unit_filter: UnitFilter = field(default_factory=UnitFilter)
    pretrain_on_target_train: bool = False
    #: keep this many of the non-target pretraining sessions (None: all), see limited()
    n_pretrain: int | None = None

    def limited(self, seed: int) -> Scenario:
        """This scenario with ``n_pretrain`` of its non-target pretraining sessions: the
        first n of a permutation drawn with ``seed`` (nested in n for one seed), kept in
        table order; itself when there is no limit or no more sessions than it."""
        targets = set(self.target_sessions)
        others = [s for s in self.pretrain_sessions if s not in targets]
        if self.n_pretrain is None or self.n_pretrain >= len(others):
            return self
        order = np.random.default_rng(seed).permutation(len(others))
        keep = {others[i] for i in order[: self.n_pretrain]} | targets
        return dataclasses.replace(
            self, pretrain_sessions=[s for s in self.pretrain_sessions if s in keep])


def _as_list(v: Any) -> list[Any]:
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _as_date(v: Any, where: str) -> dt.date:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    try:
        return dt.date.fromisoformat(str(v)[:10])
    except ValueError as exc:
        raise RpntError(f"{where}: {v!r} is not an ISO date (YYYY-MM-DD)") from exc


def _check_selector(sel: Any, where: str) -> dict[str, Any]:
    if sel is None:
        return {}
    if not isinstance(sel, Mapping):
        raise RpntError(f"{where}: must be a mapping of selector keys, got {sel!r}")
    unknown = sorted(set(sel) - set(SESSION_KEYS) - set(UNIT_KEYS))
    if unknown:
        raise RpntError(f"{where}: unknown selector keys {unknown}; known: "
                        f"{[*SESSION_KEYS, *UNIT_KEYS]}")
    return dict(sel)


def match_sessions(table: pd.DataFrame, sel: Mapping[str, Any], where: str = "selector"
                   ) -> np.ndarray:
    """(n_rows,) bool: rows matching the session-level keys of ``sel`` (all True if none)."""
    ok = np.ones(len(table), bool)
    for key in ("dataset", "session", "subject", "task"):
        if key in sel:
            want = [str(x) for x in _as_list(sel[key])]
            if key == "task":
                want = [TASK_CODES.get(w, w) for w in want]
            if key not in table.columns:
                raise RpntError(f"{where}: the session table has no column {key!r}")
            ok &= table[key].astype(str).isin(want).to_numpy()
    if "split" in sel:
        if "split" not in table.columns:
            raise RpntError(f"{where}: the session table has no column 'split' (FALCON "
                            "stores have one); re-run rpnt manifest")
        want = [str(x) for x in _as_list(sel["split"])]
        have = table["split"].fillna("").astype(str)
        # "held_out" selects held_out_calib (and any other held-out split)
        ok &= np.array([any(v == w or v.startswith(w + "_") for w in want) for v in have],
                       bool)
    if "date_from" in sel or "date_to" in sel:
        dates = [_as_date(d, f"{where}: session table date") for d in table["date"]]
        if "date_from" in sel:
            lo = _as_date(sel["date_from"], f"{where}.date_from")
            ok &= np.array([d >= lo for d in dates], bool)
        if "date_to" in sel:
            hi = _as_date(sel["date_to"], f"{where}.date_to")
            ok &= np.array([d <= hi for d in dates], bool)
    return ok


def _unit_filter(sel: Mapping[str, Any], exclude: bool) -> UnitFilter:
    return UnitFilter(areas=tuple(str(a) for a in _as_list(sel.get("area", []))),
                      sites=tuple(str(s) for s in _as_list(sel.get("site", []))),
                      exclude=exclude)


def resolve_scenario(table: pd.DataFrame, scenario_cfg: Mapping[str, Any],
                     name: str = "scenario") -> Scenario:
    """Apply a scenario config to a session table (manifest or :func:`plan_sessions`).

    ``table`` needs columns ``session``, ``subject``, ``task``, ``date`` (``dataset``
    when selected on). See the module docstring for the rules.
    """
    where = f"scenarios.{name}"
    if not isinstance(scenario_cfg, Mapping):
        raise RpntError(f"{where}: must be a mapping with 'target' (and optional 'holdout')")
    unknown = sorted(set(scenario_cfg) - set(SCENARIO_KEYS))
    if unknown:
        raise RpntError(f"{where}: unknown keys {unknown}; known: {list(SCENARIO_KEYS)}")
    if "target" not in scenario_cfg:
        raise RpntError(f"{where}: missing 'target' selector")
    target = _check_selector(scenario_cfg["target"], f"{where}.target")
    holdout = (target if scenario_cfg.get("holdout") is None
               else _check_selector(scenario_cfg["holdout"], f"{where}.holdout"))
    loose = bool(scenario_cfg.get("pretrain_on_target_train", False))
    scenario_manifests(scenario_cfg, where)  # checked here too
    n_pre = scenario_cfg.get("n_pretrain_sessions")
    if n_pre is not None and (isinstance(n_pre, bool) or not isinstance(n_pre, int)
                              or n_pre < 1):
        raise RpntError(f"{where}.n_pretrain_sessions: {n_pre!r} must be a positive number "
                        "of sessions (leave it out for all)")
    if not any(k in target for k in SESSION_KEYS):
        raise RpntError(f"{where}.target: needs at least one session-level key "
                        f"({', '.join(SESSION_KEYS)})")
    is_target = match_sessions(table, target, f"{where}.target")
    if not is_target.any():
        raise RpntError(f"{where}.target: matches no session of the session table "
                        f"({len(table)} sessions); fix the selector")
    held = (match_sessions(table, holdout, f"{where}.holdout")
            if any(k in holdout for k in SESSION_KEYS) else np.zeros(len(table), bool))
    pretrain = ~held & ~is_target
    if loose:
        pretrain |= is_target
    sessions = table["session"].astype(str).to_numpy()
    if not pretrain.any():
        raise RpntError(f"{where}: no session is left for pretraining; narrow the holdout")
    return Scenario(
        name=name,
        pretrain_sessions=sessions[pretrain].tolist(),
        target_sessions=sessions[is_target].tolist(),
        pretrain_unit_filter=_unit_filter(holdout, exclude=True),
        target_unit_filter=_unit_filter(target, exclude=False),
        pretrain_on_target_train=loose,
        n_pretrain=n_pre,
    )


def scenario_from_config(config: Mapping[str, Any], name: str, table: pd.DataFrame) -> Scenario:
    """Look ``name`` up in the ``scenarios`` section of a workflow config and resolve it."""
    scenarios = config.get("scenarios") or {}
    if name not in scenarios:
        raise RpntError(f"scenario {name!r} is not in the config's 'scenarios' section "
                        f"(known: {sorted(scenarios)})")
    return resolve_scenario(table, scenarios[name], name)


def scenario_section(config: Mapping[str, Any] | None, scenario: str) -> Mapping[str, Any]:
    """``config["scenarios"][scenario]`` or an RpntError naming the known scenarios."""
    scenarios = (config or {}).get("scenarios") or {}
    if scenario not in scenarios:
        known = ", ".join(sorted(scenarios)) or "none (pass --config with a scenarios section)"
        raise RpntError(f"scenario {scenario!r} is not in the config's scenarios; known: {known}")
    return scenarios[scenario] or {}


def apply_scenario_units(session: SessionData, config: Mapping[str, Any] | None,
                         scenario: str | None) -> SessionData:
    """Restrict ``session`` to the units the scenario's target selects (``area``/``site``).

    The one unit-selection rule of target sessions, shared by finetuning, the peers,
    evaluation and the ceiling. Without unit-level keys in ``scenarios.<name>.target``
    (or without a scenario) the session is returned unchanged.
    """
    if scenario is None:
        return session
    return target_units(session, scenario_section(config, scenario))


def target_units(session: SessionData, scenario: Mapping[str, Any] | None) -> SessionData:
    """``session`` restricted to the units the target selector of the scenario section
    ``scenario`` selects (unchanged for None or no unit-level target keys)."""
    if scenario is None:
        return session
    return _unit_filter(scenario.get("target") or {}, exclude=False).apply(session)


def scenario_manifests(section: Mapping[str, Any], where: str = "scenario") -> list[str]:
    """The manifests of other datasets whose sessions join the pretraining corpus of the
    scenario config ``section`` (its ``pretrain_manifests``; none by default)."""
    extra = section.get("pretrain_manifests")
    if extra is None:
        return []
    if not isinstance(extra, list) or not all(isinstance(m, str) and m for m in extra):
        raise RpntError(f"{where}.pretrain_manifests: {extra!r} must be a list of manifest "
                        "paths (rpnt manifest output of another dataset)")
    return list(extra)


def pretrain_manifests(config: Mapping[str, Any] | None, scenario: str) -> list[str]:
    """:func:`scenario_manifests` of scenario ``scenario`` of a config."""
    return scenario_manifests(scenario_section(config, scenario), f"scenarios.{scenario}")

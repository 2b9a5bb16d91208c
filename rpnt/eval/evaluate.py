"""``rpnt evaluate`` as a library: a saved decoder + a session -> one metrics record
(:func:`evaluate_model`; a decoder in memory: :func:`score_decoder`), written with its
predictions by :func:`write_scores`. The jobs (:mod:`rpnt.jobs`) call these: a training
job scores the decoder it has just trained without reading it back.

Metrics record (docs/architecture.md "Metrics JSON")::

    {"model": "gru", "scenario": "cross_session", "session": "...", "seed": 0,
     "r2": {"vx": .., "vy": .., "mean": ..}, "n_bins": .., "n_trials": .., "split": "test",
     "kind": "gru", "store": {"dataset", "dandiset_id", "dandiset_version", ...},
     "provenance": {...}, ...tags}

A model directory may instead hold a *skip record* (:func:`rpnt.decoders.base.write_skip`,
e.g. POYO without torch-brain): ``{"model": "poyo", "skipped": "torch-brain not
installed", ...}``. Evaluate then passes it through as ``{"model": "poyo", "skipped":
"...", "r2": null, ...}`` and the table shows the reason in that row instead of failing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from rpnt.atomic import atomic_path, write_json
from rpnt.data.session import VELOCITY_NAMES, SessionData
from rpnt.decoders.base import Decoder, load_decoder, read_meta, read_skip
from rpnt.errors import RpntError
from rpnt.eval.falcon_metric import apply_official
from rpnt.online.replay import stream_session
from rpnt.provenance import provenance
from rpnt.scoring.stitch import SessionScore, evaluate_session

#: Store attributes copied into every metrics record (for the table's provenance block).
STORE_ATTRS = ("dataset", "dandiset_id", "dandiset_version", "source_sha256", "adapter",
               "schema_version")


def parse_tags(items: list[str] | None) -> dict[str, Any]:
    """``["seed=0", "model=gru"]`` -> ``{"seed": 0, "model": "gru"}`` (JSON values if valid)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise RpntError(f"--tag {item!r}: expected key=value, e.g. --tag seed=0")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _identity(meta: dict[str, Any], tags: dict[str, Any], scenario: str | None,
              session: SessionData) -> dict[str, Any]:
    rec = {
        "model": tags.get("model", meta.get("model", meta.get("kind"))),
        "scenario": scenario if scenario is not None else tags.get("scenario",
                                                                   meta.get("scenario")),
        "session": session.session,
        "seed": tags.get("seed", meta.get("seed")),
        "store": {k: session.attrs[k] for k in STORE_ATTRS if k in session.attrs},
    }
    if "budget" in meta:  # the label budget the decoder was trained at (a table column)
        rec["budget"] = str(tags.get("budget", meta["budget"]))
    if "target_probe" in meta:  # the pretrained features' probe on this target
        rec["target_probe"] = meta["target_probe"]
    rec.update({k: v for k, v in tags.items() if k not in rec})
    return rec


def score_decoder(
    decoder: Decoder,
    meta: dict[str, Any],
    session: SessionData,
    *,
    scenario: str | None = None,
    tags: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    model_dir: str | Path | None = None,
    split: str = "test",
    stream: bool = False,
) -> tuple[dict[str, Any], SessionScore]:
    """Score ``decoder`` (its ``meta.json`` as ``meta``) on ``session`` (units already
    selected): a metrics record and the :class:`rpnt.scoring.stitch.SessionScore`.

    ``stream``: score it streamed bin by bin from the session's start
    (:func:`rpnt.online.replay.stream_session`) instead of stitched windows; the record
    gains ``scoring``, ``latency`` and ``stream_check_max_abs_diff``. On a FALCON store the
    variance-weighted R² comes from FALCON's evaluator when it is installed
    (:func:`rpnt.eval.falcon_metric.apply_official`). The record carries provenance
    (git commit, packages, config hash when ``config`` is given).
    """
    online: dict[str, Any] = {}
    if stream:
        score, online = stream_session(decoder, session, split=split)
    else:
        score = evaluate_session(decoder, session, split=split)
    rec = _identity(meta, dict(tags or {}), scenario, session)
    rec["kind"] = meta.get("kind")
    rec.update(score.metrics())
    apply_official(rec, session.velocity[score.mask], score.pred[score.mask])
    rec.update(online)
    rec["provenance"] = provenance(config, model_dir=None if model_dir is None
                                   else str(model_dir))
    return rec, score


def skipped_record(skip: dict[str, Any], session: SessionData, *,
                   scenario: str | None = None, tags: dict[str, Any] | None = None,
                   config: dict[str, Any] | None = None, model_dir: str | Path | None = None,
                   split: str = "test") -> dict[str, Any]:
    """The metrics record of a skip record (a decoder that could not be trained here)."""
    rec = _identity(skip, dict(tags or {}), scenario, session)
    rec.update({k: v for k, v in skip.items() if k not in rec})
    rec.update(r2=None, n_bins=0, n_trials=0, split=split,
               provenance=provenance(config, model_dir=None if model_dir is None
                                     else str(model_dir)))
    return rec


def evaluate_model(
    model_dir: str | Path,
    session: SessionData,
    scenario: str | None = None,
    tags: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    split: str = "test",
    stream: bool = False,
) -> tuple[dict[str, Any], SessionScore | None]:
    """Score the decoder saved in ``model_dir`` on ``session`` (:func:`score_decoder`);
    a skip record gives its skipped metrics record and no score."""
    skip = read_skip(model_dir)
    if skip is not None:
        return skipped_record(skip, session, scenario=scenario, tags=tags, config=config,
                              model_dir=model_dir, split=split), None
    return score_decoder(load_decoder(model_dir), read_meta(model_dir), session,
                         scenario=scenario, tags=tags, config=config, model_dir=model_dir,
                         split=split, stream=stream)


def save_predictions(path: str | Path, session: SessionData, score: SessionScore,
                     split: str = "test", **meta: Any) -> Path:
    """Write true and stitched velocity on ``split`` trials to an ``.npz`` (atomically).

    Arrays (n = bins inside ``split`` trials): ``time`` (n,), ``true`` (n, A),
    ``pred`` (n, A; NaN where no window reached), ``scored`` (n,) bool,
    ``trial`` (n,) int index into the session's trial table, ``session`` (str) and
    ``meta`` (a JSON string of ``meta``, e.g. model, scenario, seed; with the store's
    ``covariates`` and their units when they are not the velocity axes vx, vy).
    """
    in_trials = session.trial_bins(split)
    sel_trials = np.flatnonzero(session.trial_split == split)
    t = session.time[in_trials]
    # each bin's trial: the last selected trial starting at or before it
    pos = np.searchsorted(session.trial_start[sel_trials], t, side="right") - 1
    trial = sel_trials[np.clip(pos, 0, max(sel_trials.size - 1, 0))]
    if session.covariate_names != list(VELOCITY_NAMES):  # a store of other covariates
        meta = {"covariates": session.covariate_names,
                "covariate_units": session.attrs.get("covariate_units", ""), **meta}
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(
            fh, time=t, true=session.velocity[in_trials], pred=score.pred[in_trials],
            scored=score.mask[in_trials], trial=trial.astype(np.int64),
            session=np.array(session.session),
            meta=np.array(json.dumps({"session": session.session, **meta}, default=str)),
        )
    return path


def write_metrics(path: str | Path, record: dict[str, Any]) -> Path:
    """Atomically write one metrics record as JSON."""
    return write_json(path, record)


def write_scores(record: dict[str, Any], score: SessionScore | None, session: SessionData,
                 out: str | Path, predictions: str | Path | None = None,
                 split: str = "test") -> dict[str, Any]:
    """Write a metrics record (and the ``predictions`` .npz) atomically; returns it.

    A skipped model (``score`` None) gets an empty, labelled predictions file, so the
    workflow's declared output exists and figures can tell it apart.
    """
    if predictions:
        if score is None:
            with atomic_path(predictions) as tmp, open(tmp, "wb") as fh:
                np.savez_compressed(fh, skipped=np.array(record["skipped"]),
                                    session=np.array(session.session))
        else:
            save_predictions(predictions, session, score, split=split,
                             model=record["model"], scenario=record["scenario"],
                             seed=record["seed"])
    write_metrics(out, record)
    return record


def summary(record: dict[str, Any]) -> str:
    """One line for the job log: the model, its R² per axis, bins and trials scored."""
    if record.get("r2") is None:
        return f"{record['model']}: skipped ({record.get('skipped')})"
    r2 = record["r2"]
    return (f"{record['model']} on {record['session']}: R² mean {r2['mean']:.4f} "
            f"({', '.join(f'{k} {v:.4f}' for k, v in r2.items() if k != 'mean')}), "
            f"{record['n_bins']} bins, {record['n_trials']} trials")

"""``rpnt evaluate`` as a library: a saved decoder + a session -> one metrics record
(:func:`evaluate_model`), or files in, metrics JSON and predictions out
(:func:`evaluate_to_files`, also run by the training commands' ``--metrics``).

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
from rpnt.configfile import load_yaml
from rpnt.data.scenarios import apply_scenario_units
from rpnt.data.session import SessionData
from rpnt.decoders.base import load_decoder, read_meta, read_skip
from rpnt.errors import RpntError
from rpnt.online.replay import stream_session
from rpnt.provenance import provenance
from rpnt.scoring.stitch import SessionScore, evaluate_session
from rpnt.seeding import seed_everything
from rpnt.store import load_session

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
    rec.update({k: v for k, v in tags.items() if k not in rec})
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
    """Score the decoder in ``model_dir`` on ``session`` (units already selected).

    ``stream``: score it streamed bin by bin from the session's start
    (:func:`rpnt.online.replay.stream_session`) instead of stitched windows; the record
    gains ``scoring``, ``latency`` and ``stream_check_max_abs_diff``.

    Returns ``(record, score)``; ``score`` is the :class:`rpnt.scoring.stitch.SessionScore`
    (None for a skip record). The record carries provenance (git commit, packages,
    config hash when ``config`` is given).
    """
    tags = dict(tags or {})
    skip = read_skip(model_dir)
    if skip is not None:
        rec = _identity(skip, tags, scenario, session)
        rec.update({k: v for k, v in skip.items() if k not in rec})
        rec.update(r2=None, n_bins=0, n_trials=0, split=split,
                   provenance=provenance(config, model_dir=str(model_dir)))
        return rec, None

    meta = read_meta(model_dir)
    decoder = load_decoder(model_dir)
    online: dict[str, Any] = {}
    if stream:
        score, online = stream_session(decoder, session, split=split)
    else:
        score = evaluate_session(decoder, session, split=split)
    rec = _identity(meta, tags, scenario, session)
    rec["kind"] = meta.get("kind")
    rec.update(score.metrics())
    rec.update(online)
    rec["provenance"] = provenance(config, model_dir=str(model_dir))
    return rec, score


def save_predictions(path: str | Path, session: SessionData, score: SessionScore,
                     split: str = "test", **meta: Any) -> Path:
    """Write true and stitched velocity on ``split`` trials to an ``.npz`` (atomically).

    Arrays (n = bins inside ``split`` trials): ``time`` (n,), ``true`` (n, A),
    ``pred`` (n, A; NaN where no window reached), ``scored`` (n,) bool,
    ``trial`` (n,) int index into the session's trial table, ``session`` (str) and
    ``meta`` (a JSON string of ``meta``, e.g. model, scenario, seed).
    """
    in_trials = session.trial_bins(split)
    sel_trials = np.flatnonzero(session.trial_split == split)
    t = session.time[in_trials]
    # each bin's trial: the last selected trial starting at or before it
    pos = np.searchsorted(session.trial_start[sel_trials], t, side="right") - 1
    trial = sel_trials[np.clip(pos, 0, max(sel_trials.size - 1, 0))]
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


def evaluate_to_files(model_dir: str | Path, store: str | Path, out: str | Path, *,
                      predictions: str | Path | None = None, scenario: str | None = None,
                      config: str | Path | None = None, tags: dict[str, Any] | None = None,
                      split: str = "test", stream: bool = False) -> dict[str, Any]:
    """``rpnt evaluate`` as one call: files in, the metrics JSON ``out`` (and the
    ``predictions`` .npz) written atomically; returns the record.

    The training commands call it on the decoder they have just written (``--metrics``),
    so the workflow scores each model inside the job that trained it; the result is the
    same as that of a separate ``rpnt evaluate`` process: the job's generators are
    reseeded here and the decoder is read back from ``model_dir``.
    """
    tags = dict(tags or {})
    # Scoring draws nothing at random (the decoder's eval_seed fixes its unit choice);
    # seeding from the run's seed keeps any draw of a library identical between runs.
    seed_everything(tags["seed"] if isinstance(tags.get("seed"), int) else 0)
    cfg = load_yaml(config) if config else None
    if scenario and cfg is None:
        raise RpntError("--scenario needs --config CFG.yaml (the scenarios section)")
    session = apply_scenario_units(load_session(store), cfg, scenario)
    record, score = evaluate_model(model_dir, session, scenario=scenario, tags=tags,
                                   config=cfg, split=split, stream=stream)
    record["store_path"] = str(store)
    if predictions:
        if score is None:
            # a skipped model has no predictions: write an empty, labelled file so the
            # workflow's declared output exists and figures can tell it apart
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

"""The manifest: one row per ingested session, the table scenarios select sessions from.

Columns (tab-separated file, in this order): dataset, session, subject, task, date, areas,
sites, n_units, n_trials, n_valid, duration_s, rate_mean_hz, rate_median_hz, store, split.
``split`` is the FALCON file split of the session (store attribute ``falcon_split``,
e.g. ``held_out_calib``), empty for other datasets.
``areas`` and ``sites`` are comma-separated distinct values in unit order; rates are per-unit
mean firing rates over the whole session (total spikes / duration).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from rpnt.atomic import write_text
from rpnt.errors import RpntError
from rpnt.store import as_str, open_store

COLUMNS = ("dataset", "session", "subject", "task", "date", "areas", "sites", "n_units",
           "n_trials", "n_valid", "duration_s", "rate_mean_hz", "rate_median_hz", "store",
           "split")
_STR = ("dataset", "session", "subject", "task", "date", "areas", "sites", "store", "split")


def manifest_row(path: str | Path) -> dict:
    """One manifest row for the store at ``path`` (reads counts, not raw spikes)."""
    ds = open_store(path)
    try:
        a = ds.attrs
        counts = ds["spike_counts"].values
        n_time, n_units = counts.shape
        duration = float(n_time * float(a["bin_size_s"]))
        rates = counts.sum(axis=0, dtype=np.int64) / duration if duration > 0 else np.zeros(
            n_units)
        return {
            "dataset": str(a["dataset"]), "session": str(a["session"]),
            "subject": str(a["subject"]), "task": str(a["task"]),
            "date": str(a["recording_date"]),
            "areas": ",".join(dict.fromkeys(as_str(ds["unit_area"].values).tolist())),
            "sites": ",".join(dict.fromkeys(as_str(ds["unit_site"].values).tolist())),
            "n_units": int(n_units), "n_trials": int(ds.sizes.get("trial", 0)),
            "n_valid": int(ds["trial_valid"].values.sum()),
            "duration_s": round(duration, 6),
            "rate_mean_hz": float(rates.mean()) if n_units else float("nan"),
            "rate_median_hz": float(np.median(rates)) if n_units else float("nan"),
            "store": str(path),
            "split": str(a.get("falcon_split", "")),
        }
    finally:
        ds.close()


def build_manifest(paths: Iterable[str | Path]) -> pd.DataFrame:
    """A DataFrame with one row per store, sorted by dataset and session."""
    paths = list(paths)
    rows = [manifest_row(p) for p in tqdm(paths, desc="manifest", unit="store",
                                           disable=len(paths) < 20)]
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    dup = df["session"][df.duplicated(["dataset", "session"])]
    if len(dup):
        raise RpntError(f"manifest: session {dup.iloc[0]} appears in more than one store; "
                        "pass each session's store once")
    return df.sort_values(["dataset", "session"], kind="stable").reset_index(drop=True)


def write_manifest(df: pd.DataFrame, out: str | Path) -> Path:
    """Write ``df`` as a TSV atomically."""
    return write_text(out, df.to_csv(sep="\t", index=False, lineterminator="\n"))


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read a manifest TSV with its column types (strings stay strings, e.g. subject "1")."""
    path = Path(path)
    try:
        df = pd.read_csv(path, sep="\t", dtype={c: str for c in _STR},
                         keep_default_na=False, na_values={c: ["", "nan"] for c in
                                                          ("duration_s", "rate_mean_hz",
                                                           "rate_median_hz")})
    except (OSError, ValueError) as exc:
        raise RpntError(f"{path}: cannot read the manifest ({exc})") from exc
    if "split" not in df.columns:  # written before FALCON's splits were kept
        df["split"] = ""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise RpntError(f"{path}: manifest lacks columns {', '.join(missing)}; rebuild it with "
                        "rpnt manifest")
    for c in ("n_units", "n_trials", "n_valid"):
        df[c] = df[c].astype(np.int64)
    return df


def read_corpus(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Several manifests (datasets) as one session table, for a pretraining corpus across
    datasets: their rows in order, with a ``manifest`` column (the file each came from,
    against which its relative store paths resolve). A session id in two manifests is an
    RpntError: scenarios, read-ins and the leak check name sessions by id."""
    if not paths:
        raise RpntError("no manifest given; pass --manifest M.tsv (repeat it for a corpus "
                        "across datasets)")
    frames = []
    for p in paths:
        df = read_manifest(p)
        df["manifest"] = str(p)
        frames.append(df)
    table = pd.concat(frames, ignore_index=True)
    dup = table[table.duplicated("session", keep=False)]
    if len(dup):
        sid = dup["session"].iloc[0]
        where = ", ".join(dup.loc[dup["session"] == sid, "manifest"])
        raise RpntError(f"session {sid} is in more than one manifest ({where}); a "
                        "pretraining corpus needs distinct session ids: drop one manifest")
    return table

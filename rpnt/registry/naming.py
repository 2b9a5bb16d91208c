"""Session ids from DANDI asset file names.

An asset path such as ``sub-C/sub-C_ses-CO-20131003_behavior+ecephys.nwb`` names its
session in the file NAME: the stem without the trailing BIDS-like suffix
(``_behavior+ecephys``). Subject, task and date are parsed from that name only, never by a
substring search over the whole path (a folder called ``CO-backup`` must not make a
random-target session "center-out").
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from rpnt.errors import RpntError

#: task code in a 000688-style session id -> task name used everywhere in rpnt
TASK_CODES = {"CO": "center_out", "RT": "random_target"}

_PERICH = re.compile(r"sub-(?P<subject>[A-Za-z0-9]+)_ses-(?P<code>CO|RT)-(?P<date>\d{8})")
_SUBJECT = re.compile(r"sub-(?P<subject>[A-Za-z0-9]+)(?:_|$)")
#: FALCON (DANDI 000941/000953/000954): the split is part of the subject entity, e.g.
#: ``sub-MonkeyN-held-in-calib_ses-2020-10-19-Run1``, ``sub-MonkeyL-held-out-calib_ses-
#: 20121004``, ``sub-HumanPitt-held-in-calib_ses-19250101T111740``
_FALCON = re.compile(r"sub-(?P<subject>[A-Za-z0-9]+)-(?P<split>held-in-calib|held-in-minival|"
                     r"held-out-calib)_ses-(?P<date>\d{4}-?\d{2}-?\d{2})(?:T\d{6})?"
                     r"(?:-(?P<run>Run\d+))?")
#: FALCON's file splits, as stores and session tables name them (selector ``split``)
FALCON_SPLITS = ("held_in_calib", "held_in_minival", "held_out_calib")


def session_id_from_asset_path(path: str) -> str:
    """The session id of an asset: file name without ``.nwb`` and its modality suffix.

    ``sub-C/sub-C_ses-CO-20131003_behavior+ecephys.nwb`` -> ``sub-C_ses-CO-20131003``;
    ``sub-Jenkins/sub-Jenkins_ses-full_desc-train_behavior+ecephys.nwb`` ->
    ``sub-Jenkins_ses-full_desc-train``. The suffix is the last ``_``-separated part when it
    holds no ``-`` (BIDS entities are ``key-value``; the modality suffix is not).
    """
    name = PurePosixPath(str(path).replace("\\", "/")).name
    if not name.lower().endswith(".nwb"):
        raise RpntError(f"{path}: not an NWB asset path (expected a name ending in .nwb)")
    stem = name[: -len(".nwb")]
    head, sep, last = stem.rpartition("_")
    if sep and "-" not in last:
        stem = head
    if not stem:
        raise RpntError(f"{path}: cannot derive a session id from this file name")
    return stem


def parse_session_id(session: str) -> dict[str, str | None]:
    """Subject, task and date of a session id.

    ``sub-M_ses-RT-20140114`` -> ``{"subject": "M", "task": "random_target",
    "date": "2014-01-14"}``. Ids outside the 000688 pattern (e.g. NLB's
    ``sub-Jenkins_ses-full_desc-train``) give the subject when there is a ``sub-`` entity
    and ``None`` for task and date. FALCON ids give subject, date and ``split``
    (``sub-MonkeyN-held-out-calib_ses-2020-10-30-Run1`` -> subject ``MonkeyN``, date
    2020-10-30, split ``held_out_calib``; the task comes from the registry entry).
    """
    m = _PERICH.fullmatch(session)
    if m:
        d = m["date"]
        return {"subject": m["subject"], "task": TASK_CODES[m["code"]],
                "date": f"{d[:4]}-{d[4:6]}-{d[6:]}"}
    m = _FALCON.fullmatch(session)
    if m:
        d = m["date"].replace("-", "")
        return {"subject": m["subject"], "task": None, "date": f"{d[:4]}-{d[4:6]}-{d[6:]}",
                "split": m["split"].replace("-", "_")}
    m = _SUBJECT.match(session)
    return {"subject": m["subject"] if m else None, "task": None, "date": None}


def session_record(asset_path: str) -> dict[str, str | None]:
    """``{"session", "subject", "task", "date", "asset_path"}`` for one asset path."""
    sid = session_id_from_asset_path(asset_path)
    return {"session": sid, **parse_session_id(sid), "asset_path": str(asset_path)}

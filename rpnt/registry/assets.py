"""Asset manifests: one TSV row per asset (path, asset_id, size, etag, sha256, dandiset_id,
version).

Two kinds share this format: a *committed* manifest (``config/assets/<dandiset>.tsv``)
that lets the workflow plan its jobs before any network access, and a *fetched* manifest
that ``rpnt fetch`` writes from the server's listing (the source of truth). Columns a
source does not know (e.g. ``etag`` in a committed manifest built from a public listing)
are left empty.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rpnt.atomic import atomic_path
from rpnt.errors import RpntError

if TYPE_CHECKING:
    import pandas as pd

#: column order of every asset manifest
MANIFEST_COLUMNS = ("path", "asset_id", "size", "etag", "sha256", "dandiset_id", "version")
_REQUIRED = ("path", "asset_id", "size")


def read_asset_manifest(path: str | Path) -> pd.DataFrame:
    """Read and check an asset manifest; missing optional columns are added empty.

    Returns a DataFrame with :data:`MANIFEST_COLUMNS` (``size`` int64, the rest strings),
    sorted by path.
    """
    import pandas as pd  # here: slow to import; rpnt ingest rarely needs it

    path = Path(path)
    if not path.is_file():
        raise RpntError(f"{path}: asset manifest not found; run 'rpnt fetch DATASET "
                        f"--list-only --manifest-out {path}' to create it")
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise RpntError(f"{path}: not a readable TSV ({exc}); regenerate it with "
                        "'rpnt fetch --list-only --manifest-out'") from exc
    missing = [c for c in _REQUIRED if c not in df.columns]
    if missing:
        raise RpntError(f"{path}: asset manifest lacks column(s) {missing}; expected "
                        f"{list(MANIFEST_COLUMNS)}")
    if df["path"].duplicated().any():
        dup = df.loc[df["path"].duplicated(), "path"].iloc[0]
        raise RpntError(f"{path}: asset path {dup!r} listed twice; each asset once")
    try:
        size = df["size"].astype("int64")
    except ValueError as exc:
        raise RpntError(f"{path}: column 'size' must hold integers (bytes): {exc}") from exc
    for col in MANIFEST_COLUMNS:
        if col not in df.columns:
            df[col] = ""
    df = df[list(MANIFEST_COLUMNS)].astype(str)
    df["size"] = size
    return df.sort_values("path", ignore_index=True)


def write_asset_manifest(rows: pd.DataFrame | list[dict], path: str | Path) -> Path:
    """Write an asset manifest atomically (sorted by path, :data:`MANIFEST_COLUMNS`)."""
    import pandas as pd  # here: slow to import; rpnt ingest rarely needs it

    df = pd.DataFrame(rows) if not isinstance(rows, pd.DataFrame) else rows.copy()
    for col in MANIFEST_COLUMNS:
        if col not in df.columns:
            df[col] = ""
    df = df[list(MANIFEST_COLUMNS)].sort_values("path", ignore_index=True)
    path = Path(path)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", index=False)
    return path


def compare_manifests(listing: pd.DataFrame, committed: pd.DataFrame) -> list[str]:
    """Differences between the server's listing and a committed manifest, one line each.

    Compares the set of paths, and for shared paths the size, the asset id and the sha256
    (where both sides know it). An empty list means they agree.
    """
    out: list[str] = []
    a = listing.set_index("path")
    b = committed.set_index("path")
    only_server = sorted(set(a.index) - set(b.index))
    only_committed = sorted(set(b.index) - set(a.index))
    if only_server:
        out.append(f"{len(only_server)} asset(s) on the server but not in the committed "
                   f"manifest, e.g. {only_server[0]}")
    if only_committed:
        out.append(f"{len(only_committed)} asset(s) in the committed manifest but not on "
                   f"the server, e.g. {only_committed[0]}")
    shared = a.index.intersection(b.index)
    for col in ("size", "asset_id", "sha256"):
        x = a.loc[shared, col].astype(str)
        y = b.loc[shared, col].astype(str)
        known = (x != "") & (y != "")
        diff = shared[known & (x != y)]
        if len(diff):
            p = diff[0]
            out.append(f"{len(diff)} asset(s) differ in {col}, e.g. {p}: server "
                       f"{a.loc[p, col]} vs committed {b.loc[p, col]}")
    return out


def find_asset(manifest: str | Path, nwb: str | Path) -> dict[str, str] | None:
    """The row of asset manifest ``manifest`` whose ``path`` is the trailing part of
    ``nwb``'s path, or None.

    Matching compares whole path components from the end (``sub-C/sub-C_ses-...nwb``), so
    a file is never matched by a substring of an unrelated path.
    """
    parts = Path(nwb).resolve().parts
    best = None
    for row in read_asset_manifest(manifest).astype(str).to_dict("records"):
        p = Path(row["path"]).parts
        if p and len(p) <= len(parts) and tuple(parts[-len(p):]) == tuple(p):
            if best is None or len(p) > len(Path(best["path"]).parts):
                best = row
    return best

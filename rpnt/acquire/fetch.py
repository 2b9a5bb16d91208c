"""``rpnt fetch`` as a library call: registry entry -> listing -> manifest -> download."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from rpnt.acquire import dandi as dd
from rpnt.errors import RpntError
from rpnt.registry.assets import compare_manifests, read_asset_manifest, write_asset_manifest
from rpnt.registry.entries import get_dataset, pinned_version, resolve_api_url, select_paths

log = logging.getLogger(__name__)


@dataclass
class FetchResult:
    """What :func:`fetch_dataset` did."""

    dataset: str
    api_url: str
    dandiset_id: str
    version: str
    manifest: pd.DataFrame                      # selected assets (MANIFEST_COLUMNS)
    differences: list[str] = field(default_factory=list)  # listing vs committed manifest
    report: dd.DownloadReport | None = None     # None with list_only


def fetch_dataset(dataset: str, out: str | Path | None, *, registry: str | Path | None = None,
                  glob: str | None = None, assets: list[str] | None = None,
                  api_url: str | None = None, jobs: int = 1, list_only: bool = False,
                  manifest_out: str | Path | None = None,
                  existing: str = "overwrite-different") -> FetchResult:
    """List the pinned version of ``dataset`` on the server, select, write the manifest,
    and (unless ``list_only``) download the selected assets to ``out/<asset path>``.

    Selection = registry ``source.assets``, then ``glob``, then the explicit ``assets``
    paths (each must exist in the selection). The manifest (``manifest_out``) is written
    from the server's listing before any download.
    """
    entry = get_dataset(dataset, registry)
    d = entry["source"]
    if d["type"] != "dandi":
        hint = ("rpnt simulate" if d["type"] == "simulated"
                else f"the files already in {d['folder']}")
        raise RpntError(f"dataset {dataset} is {d['type']}, not on DANDI; use {hint}")
    version = pinned_version(entry)
    url = resolve_api_url(entry, api_url)
    dd.existing_mode(existing)  # fail on bad arguments before any network access
    if out is None and not list_only:
        raise RpntError("--out DIR is required unless --list-only")
    log.debug("listing DANDI:%s/%s at %s", d["dandiset"], version, url)
    client = dd.connect(url)
    # Download URLs use the API URL the server announced in /server-info, so that e.g. a
    # URL given without its /api suffix still yields URLs the client can parse.
    api = client.api_url.rstrip("/")
    # The client logs each failed request itself; rpnt turns failures into one line.
    with client, dd.DandiLogCatcher():
        remote = dd.open_version(client, url, d["dandiset"], version)
        listing = dd.listing_frame(remote, d["dandiset"], version)
        keep = select_paths(listing["path"].tolist(), entry, glob=glob, assets=assets)
        missing = sorted(set(assets or []) - set(keep))
        if missing:
            raise RpntError(f"asset {missing[0]} is not in DANDI:{d['dandiset']}/{version} "
                            f"or not selected by {dataset}'s 'assets:' / --glob; check the "
                            "path against 'rpnt fetch --list-only'")
        if not keep:
            raise RpntError(f"no asset of DANDI:{d['dandiset']}/{version} matches the "
                            f"selection of {dataset} (registry 'assets:' and --glob {glob!r})")
        selected = listing[listing["path"].isin(keep)].reset_index(drop=True)
        selected = dd.add_digests(remote, selected, jobs=jobs)
    # Digests are read for the selected assets only; they join the comparison there.
    digests = selected.set_index("path")
    for col in ("etag", "sha256"):
        listing[col] = listing["path"].map(digests[col]).fillna("")
    differences = _compare_committed(entry, listing, version)
    if manifest_out is not None:
        write_asset_manifest(selected, manifest_out)
        log.debug("wrote asset manifest %s (%d assets)", manifest_out, len(selected))
    result = FetchResult(dataset, url, d["dandiset"], version, selected, differences)
    if list_only:
        return result
    result.report = dd.download_assets(selected, Path(out), api, jobs=jobs,
                                       existing=existing)
    return result


def _compare_committed(entry: dict, listing: pd.DataFrame, version: str) -> list[str]:
    """Differences between the server's listing and the committed manifest (if any)."""
    path = entry["source"].get("manifest")
    if not path:
        return []
    committed = read_asset_manifest(path)
    diffs = compare_manifests(listing, committed)
    for line in diffs:
        log.warning("%s vs server DANDI:%s/%s: %s", path, entry["source"]["dandiset"],
                    version, line)
    return diffs

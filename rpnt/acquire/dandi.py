"""List, select and download DANDI assets with the official ``dandi`` client.

The server's listing is the source of truth: :func:`list_assets` asks it (through
:class:`dandi.dandiapi.DandiAPIClient`) for every asset of the pinned version, keeps the
registry's selection, and reads each kept asset's digests. :func:`download_assets` hands
one URL per asset to :func:`dandi.download.download`, which resumes partial files with HTTP
Range requests and verifies the ``dandi-etag`` checksum. Two things the client does not do
are done here: ``existing`` is always passed as a :class:`DownloadExisting` member (the
client compares with ``is``; a plain string silently re-downloads everything), and a file
that failed its checksum is removed, because the client leaves it at its final path where
the next run (or Snakemake) would take it for complete.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pandas as pd
import requests
from tqdm.auto import tqdm

from rpnt.acquire import EXISTING_CHOICES
from rpnt.errors import RpntError
from rpnt.registry.assets import MANIFEST_COLUMNS

log = logging.getLogger(__name__)



def existing_mode(name: str):
    """The :class:`dandi.download.DownloadExisting` member for ``name`` (never a string)."""
    from dandi.download import DownloadExisting  # here: dandi costs 1.5 s to import

    try:
        return DownloadExisting(name)
    except ValueError as exc:
        raise RpntError(f"--existing {name!r} is not one of {list(EXISTING_CHOICES)}") from exc


def asset_url(api_url: str, dandiset_id: str, version: str, asset_id: str) -> str:
    """A pinned per-asset URL that ``dandi.download.download`` understands."""
    return (f"{api_url.rstrip('/')}/dandisets/{dandiset_id}/versions/{version}"
            f"/assets/{asset_id}/download/")


def version_url(api_url: str, dandiset_id: str, version: str) -> str:
    """The pinned URL of a dandiset version."""
    return f"{api_url.rstrip('/')}/dandisets/{dandiset_id}/versions/{version}/"


def connect(api_url: str):
    """A :class:`DandiAPIClient` for ``api_url`` after the client's own server discovery.

    ``dandi.utils.get_instance`` asks ``/server-info`` once (no retry loop), so an
    unreachable or non-DANDI server fails here in one clear line instead of after the
    client's twelve retries of the first API call.
    """
    from dandi.dandiapi import DandiAPIClient  # here: dandi costs 1.5 s to import
    from dandi.utils import get_instance  # here: dandi costs 1.5 s to import

    with DandiLogCatcher() as caught:
        try:
            instance = get_instance(api_url)
        except Exception as exc:  # RuntimeError/ValueError/ConnectionError from the client
            raise RpntError(
                f"cannot reach a DANDI API server at {api_url} ({_one_line(exc)}); check "
                "--api-url, RPNT_DANDI_API_URL or the registry's api_url, and the "
                "network") from exc
    failed = [m for m in caught.messages if m.startswith("Request to")]
    if failed:
        # For the public archive the client falls back to built-in URLs when /info/ fails,
        # and the first API call would then retry for about a minute; a server that does
        # not answer its discovery request is reported now instead.
        raise RpntError(f"cannot reach a DANDI API server at {api_url} "
                        f"({_one_line(failed[0])}); check --api-url, RPNT_DANDI_API_URL or "
                        "the registry's api_url, and the network")
    return DandiAPIClient(dandi_instance=instance)


def open_version(client, api_url: str, dandiset_id: str, version: str):
    """The :class:`RemoteDandiset` at ``version``; unknown dandiset/version -> RpntError."""
    from dandi.exceptions import NotFoundError  # here: dandi costs 1.5 s to import

    try:
        ds = client.get_dandiset(dandiset_id, lazy=False)
    except NotFoundError as exc:
        raise RpntError(f"DANDI:{dandiset_id} does not exist at {api_url}; check the "
                        "'dandiset:' id in the registry") from exc
    except requests.RequestException as exc:
        raise RpntError(f"DANDI API at {api_url} failed for DANDI:{dandiset_id}: "
                        f"{exc}") from exc
    try:
        return ds.for_version(version) if ds.version_id != version else ds
    except NotFoundError as exc:
        known = [v.identifier for v in ds.get_versions()]
        raise RpntError(f"DANDI:{dandiset_id} has no version {version!r} at {api_url} "
                        f"(it has {known}); fix 'version:' in the registry") from exc
    except requests.RequestException as exc:
        raise RpntError(f"DANDI API at {api_url} failed for DANDI:{dandiset_id}/"
                        f"{version}: {exc}") from exc


def listing_frame(remote_version, dandiset_id: str, version: str) -> pd.DataFrame:
    """Every asset of the version: path, asset_id, size (etag/sha256 still empty)."""

    try:
        assets = list(remote_version.get_assets())
    except requests.RequestException as exc:
        raise RpntError(f"listing DANDI:{dandiset_id}/{version} failed: {exc}") from exc
    rows = [{"path": a.path, "asset_id": a.identifier, "size": int(a.size), "etag": "",
             "sha256": "", "dandiset_id": dandiset_id, "version": version} for a in assets]
    df = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    return df.sort_values("path", ignore_index=True)


def add_digests(remote_version, df: pd.DataFrame, jobs: int = 1) -> pd.DataFrame:
    """Fill ``etag`` and ``sha256`` from each asset's metadata (``jobs`` requests at once)."""
    from dandi.exceptions import NotFoundError  # here: dandi costs 1.5 s to import

    def digests(asset_id: str) -> tuple[str, str]:
        meta = remote_version.get_asset(asset_id).get_raw_metadata()
        d = meta.get("digest", {})
        return d.get("dandi:dandi-etag", ""), d.get("dandi:sha2-256", "")


    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            # disable=None: a progress bar on a terminal only, none in logs or on errors
            got = list(tqdm(pool.map(digests, df["asset_id"]), total=len(df), unit="asset",
                            desc="asset metadata", disable=None, leave=False))
    except (NotFoundError, requests.RequestException) as exc:
        raise RpntError(f"reading asset metadata of DANDI:{remote_version.identifier}/"
                        f"{remote_version.version_id} failed: {exc}") from exc
    out = df.copy()
    out["etag"] = [g[0] for g in got]
    out["sha256"] = [g[1] for g in got]
    missing = out.loc[out["etag"] == "", "path"].tolist()
    if missing:
        raise RpntError(f"asset {missing[0]} has no dandi:dandi-etag digest on the server; "
                        "it cannot be verified after download")
    return out


class DandiLogCatcher(logging.Filter):
    """Collects the ``dandi`` logger's warnings and errors while rpnt talks to a server.

    Installed as a *filter* on the ``dandi`` logger, so a caught record is neither printed
    nor propagated: its content goes into rpnt's one-line error instead. With ``--verbose``
    (root logger at DEBUG) records pass through unchanged.
    """

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []
        self.first_error: dict | None = None
        self.verbose = logging.getLogger().isEnabledFor(logging.DEBUG)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        for a in args:
            if isinstance(a, dict) and self.first_error is None:
                self.first_error = a  # download(): "%s The first error: %r"
        self.messages.append(record.getMessage())
        return self.verbose

    def __enter__(self) -> DandiLogCatcher:
        logging.getLogger("dandi").addFilter(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("dandi").removeFilter(self)

    def detail(self, fallback: object) -> str:
        if self.first_error:
            e = self.first_error
            return f"{e.get('path', '?')}: {e.get('message', e)}"
        return self.messages[-1] if self.messages else str(fallback)


@dataclass
class DownloadReport:
    """What a download run did, by asset path.

    ``present_before``: a file was already at the path (kept if the ``existing`` mode
    accepted it, else replaced); ``downloaded``: there was none; ``failed``: missing or
    removed after a failed run.
    """

    downloaded: list[str] = field(default_factory=list)
    present_before: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def _etag_of(path: Path) -> str:
    from dandischema.digests.dandietag import DandiETag  # here: dandi costs 1.5 s to import

    return DandiETag.from_file(path).as_str()


def download_assets(rows: pd.DataFrame, out: Path, api_url: str, *, jobs: int = 1,
                    existing: str = "overwrite-different") -> DownloadReport:
    """Download ``rows`` (a manifest frame with etags) to ``out/<asset path>``.

    One pinned per-asset URL each; assets sharing a folder go to one
    ``dandi.download.download`` call (``jobs`` files at once). After a failure every
    selected file that is present but does not match its etag is deleted, so nothing
    unverified stays at a final path; partial data stays in the client's hidden
    ``*.dandidownload`` folders for resume. Raises :class:`RpntError` on any failure.
    """
    from dandi.download import download  # here: dandi costs 1.5 s to import

    mode = existing_mode(existing)
    out = Path(out)
    report = DownloadReport()
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows.to_dict("records"):
        groups[str(PurePosixPath(r["path"]).parent)].append(r)
        (report.present_before if (out / r["path"]).is_file() else report.downloaded).append(
            r["path"])
    error: Exception | None = None
    with DandiLogCatcher() as caught:
        for folder, grp in sorted(groups.items()):
            dest = out / folder
            dest.mkdir(parents=True, exist_ok=True)  # the client needs it to exist
            urls = [asset_url(api_url, r["dandiset_id"], r["version"], r["asset_id"])
                    for r in grp]
            try:
                download(urls, dest, existing=mode, jobs=max(1, jobs), get_metadata=False)
            except (RuntimeError, requests.RequestException, OSError) as exc:
                error = exc
    if error is None:
        return report
    for r in rows.to_dict("records"):
        f = out / r["path"]
        if f.is_file() and _etag_of(f) != r["etag"]:
            f.unlink()
            report.failed.append(r["path"])
        elif not f.is_file():
            report.failed.append(r["path"])
    detail = _one_line(caught.detail(error))
    if not report.failed:
        raise RpntError(f"download from {api_url} failed: {detail}")
    raise RpntError(
        f"download of {len(report.failed)} asset(s) failed (first: {report.failed[0]}): "
        f"{detail}; files failing verification were removed, rerun to resume")


def _one_line(text: str, limit: int = 400) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."

"""A DANDI-API-compatible HTTP server for tests (standard library only, 127.0.0.1).

It serves a folder of files as one dandiset with published versions and a draft, with
the endpoints and fields the real ``dandi`` client reads (see
/work/shared/reference/datasets.md): ``/server-info``, dandiset, versions, version info,
paged asset listings (``count``/``next``/``page``; ``next`` is the same URL with
``page=2`` so the client fetches the rest concurrently), asset metadata carrying the
``dandi:dandi-etag`` digest (computed with :class:`dandischema.digests.dandietag.DandiETag`),
asset info, and ``/api/assets/{id}/download/`` answering with a 302 redirect to a blob URL
that honours ``Range: bytes=N-``.

For tests it keeps a request log and injects faults: :meth:`DandiTestServer.corrupt`
serves a blob with one flipped byte (the advertised etag stays that of the true file),
:meth:`DandiTestServer.drop_once` closes the connection after N bytes of a blob, once.

Usage::

    with DandiTestServer(folder, "000688", {"0.250122.1735": None}) as srv:
        srv.api_url   # "http://127.0.0.1:PORT/api"
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from dataclasses import dataclass
from fnmatch import fnmatchcase
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

from dandischema.digests.dandietag import DandiETag

TIMESTAMP = "2025-01-22T17:35:00.000000Z"
_NS = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")


@dataclass
class _Asset:
    path: str
    file: Path
    asset_id: str
    blob_id: str
    size: int
    etag: str
    sha256: str


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


class DandiTestServer:
    """Serve ``root`` (every file below it, by relative POSIX path) as a dandiset.

    ``versions`` maps each published version id to the asset paths it holds (``None`` =
    all files); the draft always holds all files. ``page_size`` is the default listing
    page size (small, so that paging is exercised).
    """

    def __init__(self, root: str | Path, dandiset_id: str = "000688",
                 versions: dict[str, list[str] | None] | None = None,
                 page_size: int = 3) -> None:
        self.root = Path(root)
        self.dandiset_id = dandiset_id
        self.page_size = page_size
        self.assets: dict[str, _Asset] = {}
        for f in sorted(p for p in self.root.rglob("*") if p.is_file()):
            rel = f.relative_to(self.root).as_posix()
            aid = str(uuid.uuid5(_NS, f"{dandiset_id}/{rel}"))
            self.assets[rel] = _Asset(
                path=rel, file=f, asset_id=aid, blob_id=str(uuid.uuid5(_NS, f"blob/{aid}")),
                size=f.stat().st_size, etag=DandiETag.from_file(f).as_str(),
                sha256=_sha256(f))
        self.versions: dict[str, list[str]] = {}
        for v, paths in (versions or {"0.250122.1735": None}).items():
            chosen = sorted(self.assets) if paths is None else sorted(paths)
            unknown = set(chosen) - set(self.assets)
            if unknown:
                raise ValueError(f"version {v} lists files not under {root}: {sorted(unknown)}")
            self.versions[v] = chosen
        self.versions["draft"] = sorted(self.assets)
        self.log: list[dict] = []
        self._lock = threading.Lock()
        self._corrupt: set[str] = set()
        self._drop: dict[str, int] = {}
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> DandiTestServer:
        server = self

        class Handler(_Handler):
            srv = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> DandiTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    # ------------------------------------------------------------ fault injection
    def corrupt(self, path: str, on: bool = True) -> None:
        """Serve the blob of ``path`` with its first byte flipped (until turned off)."""
        with self._lock:
            (self._corrupt.add if on else self._corrupt.discard)(path)

    def drop_once(self, path: str, after_bytes: int) -> None:
        """The next GET of ``path``'s blob sends ``after_bytes`` bytes, then hangs up."""
        with self._lock:
            self._drop[path] = after_bytes

    def blob_requests(self, path: str | None = None) -> list[dict]:
        """Logged GETs of blob bytes (optionally of one asset path)."""
        with self._lock:
            log = list(self.log)
        out = [r for r in log if r["method"] == "GET" and r["path"].startswith("/blobs/")]
        if path is not None:
            out = [r for r in out if r["asset"] == path]
        return out

    def clear_log(self) -> None:
        with self._lock:
            self.log.clear()

    # ----------------------------------------------------------------- documents
    def version_doc(self, v: str) -> dict:
        paths = self.versions[v]
        return {"version": v, "name": "rpnt test dandiset", "asset_count": len(paths),
                "size": sum(self.assets[p].size for p in paths), "created": TIMESTAMP,
                "modified": TIMESTAMP, "status": "Valid" if v == "draft" else "Published"}

    def dandiset_doc(self) -> dict:
        published = [v for v in self.versions if v != "draft"]
        return {"identifier": self.dandiset_id, "created": TIMESTAMP, "modified": TIMESTAMP,
                "contact_person": "Test, Person", "embargo_status": "OPEN",
                "draft_version": self.version_doc("draft"),
                "most_recent_published_version":
                    self.version_doc(max(published, key=_version_key)) if published else None}

    def asset_listing(self, a: _Asset) -> dict:
        return {"asset_id": a.asset_id, "blob": a.blob_id, "zarr": None, "path": a.path,
                "size": a.size, "created": TIMESTAMP, "modified": TIMESTAMP}

    def asset_metadata(self, a: _Asset) -> dict:
        return {
            "id": f"dandiasset:{a.asset_id}", "identifier": a.asset_id, "path": a.path,
            "schemaKey": "Asset", "schemaVersion": "0.6.7", "contentSize": a.size,
            "encodingFormat": "application/x-nwb", "blobDateModified": TIMESTAMP,
            "digest": {"dandi:dandi-etag": a.etag, "dandi:sha2-256": a.sha256},
            "contentUrl": [f"{self.url}/api/assets/{a.asset_id}/download/",
                           f"{self.url}/blobs/{a.blob_id}"],
        }


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


class _Handler(BaseHTTPRequestHandler):
    srv: DandiTestServer
    protocol_version = "HTTP/1.0"  # one request per connection: simple hang-ups

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        return

    # ------------------------------------------------------------------ helpers
    def _record(self, status: int, asset: str | None = None) -> None:
        with self.srv._lock:
            self.srv.log.append({"method": self.command, "path": self.path, "status": status,
                                 "range": self.headers.get("Range"), "asset": asset})

    def _json(self, obj: object, status: int = 200) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._record(status)

    def _not_found(self) -> None:
        self._json({"detail": "Not found."}, 404)

    def _page(self, items: list, query: dict) -> None:
        page = int(query.get("page", ["1"])[0])
        size = int(query.get("page_size", [str(self.srv.page_size)])[0])
        chunk = items[(page - 1) * size: page * size]
        nxt = None
        if page * size < len(items):
            q = {k: v[0] for k, v in query.items()}
            q["page"] = str(page + 1)
            nxt = f"{self.srv.url}{urlsplit(self.path).path}?{urlencode(q)}"
        self._json({"count": len(items), "next": nxt, "previous": None, "results": chunk})

    # ---------------------------------------------------------------- dispatch
    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        s = self.srv
        if path in ("/server-info", "/api/info/"):
            return self._json({
                "version": "0.4.0", "cli-minimal-version": "0.60.0", "cli-bad-versions": [],
                "services": {"api": {"url": s.api_url}, "webui": {"url": s.url},
                             "jupyterhub": {"url": s.url}}})
        m = re.fullmatch(r"/blobs/([^/]+)", path)
        if m:
            return self._blob(m[1])
        m = re.fullmatch(r"/api/assets/([^/]+)/(download/|info/|)", path)
        if m:
            a = next((x for x in s.assets.values() if x.asset_id == m[1]), None)
            if a is None:
                return self._not_found()
            if m[2] == "download/":
                self.send_response(302)
                self.send_header("Location", f"{s.url}/blobs/{a.blob_id}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return self._record(302, a.path)
            if m[2] == "info/":
                return self._json({**s.asset_listing(a), "metadata": s.asset_metadata(a)})
            return self._json(s.asset_metadata(a))
        m = re.fullmatch(r"/api/dandisets/([0-9]{6})/(.*)", path)
        if not m or m[1] != s.dandiset_id:
            return self._not_found()
        rest = m[2]
        if rest == "":
            return self._json(s.dandiset_doc())
        if rest == "versions/":
            return self._page([s.version_doc(v) for v in s.versions], query)
        m = re.fullmatch(r"versions/([^/]+)/(.*)", rest)
        if not m or m[1] not in s.versions:
            return self._not_found()
        v, rest = m[1], m[2]
        if rest == "":
            return self._json({"name": "rpnt test dandiset", "identifier":
                               f"DANDI:{s.dandiset_id}", "version": v,
                               "schemaVersion": "0.6.7"})
        if rest == "info/":
            return self._json({**s.version_doc(v), "asset_validation_errors": [],
                               "version_validation_errors": [],
                               "dandiset": {"identifier": s.dandiset_id}})
        if rest == "assets/":
            paths = s.versions[v]
            if "path" in query:
                paths = [p for p in paths if p.startswith(query["path"][0])]
            if "glob" in query:
                paths = [p for p in paths if fnmatchcase(p, query["glob"][0])]
            return self._page([s.asset_listing(s.assets[p]) for p in paths], query)
        m = re.fullmatch(r"assets/([^/]+)/(info/|download/|)", rest)
        if m:
            a = next((s.assets[p] for p in s.versions[v] if s.assets[p].asset_id == m[1]),
                     None)
            if a is None:
                return self._not_found()
            if m[2] == "info/":
                return self._json({**s.asset_listing(a), "metadata": s.asset_metadata(a)})
            if m[2] == "download/":
                self.send_response(302)
                self.send_header("Location", f"{s.url}/blobs/{a.blob_id}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return self._record(302, a.path)
            return self._json(s.asset_metadata(a))
        return self._not_found()

    def _blob(self, blob_id: str) -> None:
        s = self.srv
        a = next((x for x in s.assets.values() if x.blob_id == blob_id), None)
        if a is None:
            return self._not_found()
        data = a.file.read_bytes()
        with s._lock:
            corrupt = a.path in s._corrupt
            drop = s._drop.pop(a.path, None) if self.command == "GET" else None
        if corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        start, status = 0, 200
        rng = self.headers.get("Range")
        if rng:
            m = re.fullmatch(r"bytes=(\d+)-", rng.strip())
            if not m or int(m[1]) >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return self._record(416, a.path)
            start, status = int(m[1]), 206
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        self._record(status, a.path)
        if self.command == "HEAD":
            return
        if drop is not None:
            # Send part of the body, then hang up: the client sees an incomplete read.
            self.wfile.write(body[:drop])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(body)

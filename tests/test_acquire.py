"""rpnt fetch through the real ``dandi`` client against the DANDI-API test server.

Offline by construction: DANDI_NO_ET=1, DANDI_CACHE=ignore, and every URL is 127.0.0.1.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from dandi_server import DandiTestServer

from rpnt.acquire.fetch import fetch_dataset
from rpnt.cli import main
from rpnt.errors import RpntError
from rpnt.registry.assets import read_asset_manifest

PUBLISHED = "0.250122.1735"
OLDER = "0.240101.0000"
FILES = {
    "sub-C/sub-C_ses-CO-20131003_behavior+ecephys.nwb": 70_001,
    "sub-C/sub-C_ses-RT-20131004_behavior+ecephys.nwb": 50_003,
    "sub-M/sub-M_ses-CO-20140101_behavior+ecephys.nwb": 60_005,
    "sub-M/sub-M_ses-RT-20140114_behavior+ecephys.nwb": 40_007,
}
OLDER_FILES = sorted(FILES)[:3]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("DANDI_NO_ET", "1")
    monkeypatch.setenv("DANDI_CACHE", "ignore")
    monkeypatch.delenv("RPNT_DANDI_API_URL", raising=False)


def make_files(root: Path, sizes: dict[str, int], seed: int = 0) -> Path:
    """Random binary files standing in for NWB assets (the download path never parses them)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for rel, n in sizes.items():
        f = root / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
    return root


def write_registry(path: Path, version: str | None = PUBLISHED, **source) -> Path:
    src = {"type": "dandi", "dandiset": "000688", "version": version,
           "assets": {"glob": "sub-*/*_behavior+ecephys.nwb"}, **source}
    path.write_text(yaml.safe_dump({"datasets": [
        {"name": "toy", "source": src, "adapter": "perich_miller"}]}))
    return path


@pytest.fixture
def server(tmp_path):
    src = make_files(tmp_path / "src", FILES)
    with DandiTestServer(src, "000688", {OLDER: OLDER_FILES, PUBLISHED: None},
                         page_size=3) as srv:
        yield srv


@pytest.fixture
def registry(tmp_path):
    return write_registry(tmp_path / "datasets.yaml")


def fetch(server, registry, out, **kw):
    return fetch_dataset("toy", out, registry=registry, api_url=server.api_url, **kw)


def local_files(out: Path) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())


def server_listing(server, version: str) -> pd.DataFrame:
    rows = [{"path": a.path, "asset_id": a.asset_id, "size": a.size, "etag": a.etag,
             "sha256": a.sha256} for p, a in server.assets.items()
            if p in server.versions[version]]
    return pd.DataFrame(rows).sort_values("path", ignore_index=True)


def test_whole_dataset_manifest_matches_listing(server, registry, tmp_path):
    out, man = tmp_path / "raw", tmp_path / "assets.tsv"
    res = fetch(server, registry, out, manifest_out=man, jobs=2)
    assert local_files(out) == sorted(FILES)
    for rel in FILES:  # byte-identical to what the server holds
        assert (out / rel).read_bytes() == server.assets[rel].file.read_bytes()
    got = read_asset_manifest(man)
    want = server_listing(server, PUBLISHED)
    pd.testing.assert_frame_equal(got[want.columns.tolist()], want, check_dtype=False)
    assert set(got["dandiset_id"]) == {"000688"} and set(got["version"]) == {PUBLISHED}
    # the listing really was paged (4 assets, page size 3) and every blob fetched once
    assert any("page=2" in r["path"] for r in server.log)
    assert sorted(r["asset"] for r in server.blob_requests()) == sorted(FILES)
    assert res.report.downloaded == sorted(FILES) and not res.report.present_before


def test_glob_subset(server, registry, tmp_path):
    out = tmp_path / "raw"
    res = fetch(server, registry, out, glob="sub-M/*")
    want = [p for p in sorted(FILES) if p.startswith("sub-M/")]
    assert local_files(out) == want
    assert sorted(res.manifest["path"]) == want
    assert sorted(r["asset"] for r in server.blob_requests()) == want


def test_single_asset_and_unknown_asset(server, registry, tmp_path):
    out, one = tmp_path / "raw", sorted(FILES)[1]
    fetch(server, registry, out, assets=[one])
    assert local_files(out) == [one]
    assert [r["asset"] for r in server.blob_requests()] == [one]
    with pytest.raises(RpntError, match="not in DANDI:000688"):
        fetch(server, registry, out, assets=["sub-X/sub-X_ses-CO-20000101_behavior+ecephys.nwb"])


def test_pinned_version_downloads_that_version(server, tmp_path):
    reg = write_registry(tmp_path / "old.yaml", version=OLDER)
    out, man = tmp_path / "raw", tmp_path / "assets.tsv"
    fetch(server, reg, out, manifest_out=man)
    assert local_files(out) == OLDER_FILES  # not the newest published version's 4 files
    got = read_asset_manifest(man)
    assert got["path"].tolist() == OLDER_FILES and set(got["version"]) == {OLDER}
    assert any(f"/versions/{OLDER}/" in r["path"] for r in server.log)
    assert not any(f"/versions/{PUBLISHED}/" in r["path"] for r in server.log)


def test_draft_refused_unless_allowed(server, tmp_path):
    reg = tmp_path / "draft.yaml"
    write_registry(reg, version="draft")
    with pytest.raises(RpntError, match="allow_draft"):
        fetch(server, reg, tmp_path / "raw")
    write_registry(reg, version="draft", allow_draft=True)
    fetch(server, reg, tmp_path / "raw")
    assert local_files(tmp_path / "raw") == sorted(FILES)


def test_list_only_downloads_nothing(server, registry, tmp_path, capsys):
    man = tmp_path / "m.tsv"
    rc = main(["fetch", "toy", "--registry", str(registry), "--api-url", server.api_url,
               "--list-only", "--manifest-out", str(man)])
    assert rc == 0
    assert server.blob_requests() == []
    printed = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out), sep="\t")
    assert printed["path"].tolist() == sorted(FILES)
    assert read_asset_manifest(man)["path"].tolist() == sorted(FILES)
    # the workflow's checkpoint path: sessions planned from the fetched manifest
    from rpnt.registry.entries import get_dataset, planned_sessions

    entry = get_dataset("toy", registry)
    assert planned_sessions(entry) is None  # no committed manifest
    sessions = planned_sessions(entry, manifest=man)
    assert [s["asset_path"] for s in sessions] == sorted(FILES)
    assert sessions[1]["session"] == "sub-C_ses-RT-20131004"
    assert sessions[1]["task"] == "random_target"


@pytest.mark.parametrize("existing", ["overwrite-different", "skip"])
def test_second_run_downloads_nothing(server, registry, tmp_path, existing):
    out = tmp_path / "raw"
    fetch(server, registry, out, existing=existing)
    assert len(server.blob_requests()) == len(FILES)
    server.clear_log()
    res = fetch(server, registry, out, existing=existing)
    assert server.log, "the second run must still ask the server for its listing"
    assert server.blob_requests() == []
    assert not any(r["path"].endswith("/download/") for r in server.log)
    assert res.report.present_before == sorted(FILES) and not res.report.downloaded


def test_corrupted_blob_fails_and_is_not_kept(server, registry, tmp_path):
    out, bad = tmp_path / "raw", sorted(FILES)[2]
    server.corrupt(bad)
    with pytest.raises(RpntError) as exc:
        fetch(server, registry, out)
    msg = str(exc.value)
    assert "dandi-etag" in msg and Path(bad).name in msg and "\n" not in msg
    assert not (out / bad).exists(), "a file failing its checksum must not stay in place"
    assert local_files(out) == sorted(set(FILES) - {bad})  # the good ones were kept
    # Next run (server healed): only the bad one is fetched again, and ends verified.
    server.corrupt(bad, on=False)
    server.clear_log()
    fetch(server, registry, out)
    assert [r["asset"] for r in server.blob_requests()] == [bad]
    assert (out / bad).read_bytes() == server.assets[bad].file.read_bytes()


def test_wrong_file_in_place_is_replaced(server, registry, tmp_path):
    """A same-size file with other bytes at the final path is not taken as complete."""
    out, rel = tmp_path / "raw", sorted(FILES)[0]
    (out / rel).parent.mkdir(parents=True)
    (out / rel).write_bytes(b"\0" * FILES[rel])
    fetch(server, registry, out)
    assert [r["asset"] for r in server.blob_requests()] == sorted(FILES)
    assert (out / rel).read_bytes() == server.assets[rel].file.read_bytes()


def test_dropped_connection_resumes_with_range(tmp_path, registry):
    from dandi.consts import MAX_CHUNK_SIZE

    big = "sub-T/sub-T_ses-CO-20130818_behavior+ecephys.nwb"
    size = int(2.5 * MAX_CHUNK_SIZE) + 123  # the client appends whole chunks
    src = make_files(tmp_path / "src", {big: size}, seed=1)
    with DandiTestServer(src, "000688", {PUBLISHED: None}) as srv:
        cut = int(1.5 * MAX_CHUNK_SIZE)
        srv.drop_once(big, cut)
        out = tmp_path / "raw"
        fetch(srv, registry, out)
        reqs = srv.blob_requests(big)
    assert len(reqs) == 2
    assert reqs[0]["range"] is None and reqs[0]["status"] == 200
    start = int(reqs[1]["range"].removeprefix("bytes=").rstrip("-"))
    assert reqs[1]["status"] == 206 and 0 < start <= cut  # resumed, not restarted
    assert (out / big).read_bytes() == (src / big).read_bytes()
    assert local_files(out) == [big]  # no partial-download folders left behind


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_line_error(capsys, argv) -> str:
    rc = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1, err
    assert err[0].startswith("rpnt fetch: error: ") and "Traceback" not in err[0]
    return err[0]


def test_unknown_dandiset_one_line(server, tmp_path, capsys, caplog):
    reg = write_registry(tmp_path / "r.yaml", dandiset="999999")
    out = tmp_path / "raw"
    line = _one_line_error(capsys, ["fetch", "toy", "--registry", str(reg), "--out", str(out),
                                    "--api-url", server.api_url])
    assert "DANDI:999999 does not exist" in line
    assert not out.exists() or local_files(out) == []
    assert not [r for r in caplog.records if r.name == "dandi" and r.levelname == "ERROR"]


def test_unknown_version_one_line(server, tmp_path, capsys):
    reg = write_registry(tmp_path / "r.yaml", version="0.999999.9999")
    out = tmp_path / "raw"
    line = _one_line_error(capsys, ["fetch", "toy", "--registry", str(reg), "--out", str(out),
                                    "--api-url", server.api_url])
    assert "no version '0.999999.9999'" in line and PUBLISHED in line
    assert not out.exists() or local_files(out) == []


def test_unreachable_server_one_line(registry, tmp_path, capsys):
    url = f"http://127.0.0.1:{_closed_port()}/api"
    out = tmp_path / "raw"
    line = _one_line_error(capsys, ["fetch", "toy", "--registry", str(registry),
                                    "--out", str(out), "--api-url", url])
    assert "cannot reach a DANDI API server" in line and url in line
    assert not out.exists()


def test_cli_error_is_one_line_end_to_end_and_verbose_adds_traceback(registry, tmp_path,
                                                                      capsys):
    url = f"http://127.0.0.1:{_closed_port()}/api"
    args = ["fetch", "toy", "--registry", str(registry), "--out", str(tmp_path / "raw"),
            "--api-url", url]
    # a real process, with the CLI's own logging set-up (pytest captures logging otherwise)
    env = {**os.environ, "DANDI_NO_ET": "1", "DANDI_CACHE": "ignore"}
    quiet = subprocess.run([sys.executable, "-m", "rpnt", *args], capture_output=True,
                           text=True, env=env, timeout=120)
    assert quiet.returncode == 2
    lines = quiet.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rpnt fetch: error: cannot reach"), lines
    assert main([*args, "--verbose"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_api_url_from_env_and_registry(server, tmp_path, monkeypatch):
    """--api-url > RPNT_DANDI_API_URL > registry api_url: the env var reaches the server."""
    dead = f"http://127.0.0.1:{_closed_port()}/api"
    reg = write_registry(tmp_path / "r.yaml", api_url=dead)
    monkeypatch.setenv("RPNT_DANDI_API_URL", server.api_url)
    res = fetch_dataset("toy", tmp_path / "raw", registry=reg)
    assert res.api_url == server.api_url and len(server.blob_requests()) == len(FILES)
    monkeypatch.delenv("RPNT_DANDI_API_URL")
    with pytest.raises(RpntError, match="cannot reach"):
        fetch_dataset("toy", tmp_path / "raw2", registry=reg)  # registry URL is used


def test_committed_manifest_differences_reported(server, tmp_path):
    listing = server_listing(server, PUBLISHED)
    committed = listing.iloc[1:].copy()          # one asset missing
    committed.loc[committed.index[0], "size"] += 1  # one size differs
    committed["sha256"] = committed["sha256"].where(committed.index != 2, "0" * 64)
    committed.to_csv(tmp_path / "committed.tsv", sep="\t", index=False)
    reg = write_registry(tmp_path / "r.yaml", manifest="committed.tsv")
    res = fetch_dataset("toy", None, registry=reg, api_url=server.api_url, list_only=True)
    text = " | ".join(res.differences)
    assert "1 asset(s) on the server but not in the committed manifest" in text
    assert "differ in size" in text and "differ in sha256" in text
    assert "asset_id" not in text  # ids agree: not reported
    # identical manifest: no differences
    listing.to_csv(tmp_path / "same.tsv", sep="\t", index=False)
    reg = write_registry(tmp_path / "r2.yaml", manifest="same.tsv")
    res = fetch_dataset("toy", None, registry=reg, api_url=server.api_url, list_only=True)
    assert res.differences == []


def test_cli_default_manifest_only_without_asset(server, registry, tmp_path, capsys):
    out = tmp_path / "raw"
    one = sorted(FILES)[0]
    base = ["fetch", "toy", "--registry", str(registry), "--api-url", server.api_url,
            "--out", str(out)]
    assert main([*base, "--asset", one]) == 0
    assert local_files(out) == [one]  # per-asset job: no shared manifest written
    assert main([*base, "--jobs", "2"]) == 0
    assert local_files(out) == sorted([*FILES, "rpnt-assets.tsv"])
    man = read_asset_manifest(out / "rpnt-assets.tsv")
    assert man["path"].tolist() == sorted(FILES)
    assert "1 were already present" in capsys.readouterr().err
    assert sorted(r["asset"] for r in server.blob_requests()) == sorted(FILES)


def test_generated_nwb_files_round_trip(tmp_path):
    """Real (minimal) NWB files served as a dandiset arrive intact, and the session id
    parsed from each asset's file name is the file's own NWB session_id."""
    from datetime import UTC, datetime

    import numpy as np
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.file import Subject

    from rpnt.registry.naming import session_id_from_asset_path

    rels = ["sub-J/sub-J_ses-CO-20160405_behavior+ecephys.nwb",
            "sub-T/sub-T_ses-RT-20130910_behavior+ecephys.nwb"]
    for i, rel in enumerate(rels):
        sid = Path(rel).name.removesuffix("_behavior+ecephys.nwb")
        nwb = NWBFile(session_description="rpnt fetch test", identifier=f"test-{i}",
                      session_start_time=datetime(2016, 4, 5, tzinfo=UTC), session_id=sid,
                      subject=Subject(subject_id=sid.split("_")[0][4:], species="Macaca mulatta"))
        nwb.add_unit(spike_times=np.sort(np.random.default_rng(i).uniform(0, 10, 50)))
        f = tmp_path / "src" / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        with NWBHDF5IO(str(f), "w") as io:
            io.write(nwb)
    reg = write_registry(tmp_path / "r.yaml")
    with DandiTestServer(tmp_path / "src", "000688", {PUBLISHED: None}) as srv:
        res = fetch_dataset("toy", tmp_path / "raw", registry=reg, api_url=srv.api_url)
    assert res.manifest["path"].tolist() == rels
    for rel in rels:
        with NWBHDF5IO(str(tmp_path / "raw" / rel), "r") as io:
            got = io.read()
            assert got.session_id == session_id_from_asset_path(rel)
            assert len(got.units) == 1


def test_api_url_without_api_suffix_uses_discovered_url(server, registry, tmp_path):
    """/server-info announces the API URL; downloads use it, not the string given."""
    fetch_dataset("toy", tmp_path / "raw", registry=registry, api_url=server.url, glob="sub-C/*")
    assert local_files(tmp_path / "raw") == [p for p in sorted(FILES) if p.startswith("sub-C/")]

"""The dataset registry: validation, the real entries (complete up to the network call),
session planning, API URL precedence. No network."""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path

import pytest
import yaml

from rpnt.acquire.dandi import asset_url, version_url
from rpnt.acquire.fetch import fetch_dataset
from rpnt.errors import RpntError
from rpnt.registry.assets import read_asset_manifest
from rpnt.registry.entries import (
    DEFAULT_API_URL,
    get_dataset,
    load_registry,
    pinned_version,
    planned_sessions,
    resolve_api_url,
    select_paths,
)
from rpnt.registry.naming import parse_session_id, session_id_from_asset_path

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / "config" / "datasets.yaml"
REFERENCE = Path("/work/shared/reference/dandi-000688-assets.tsv")

DANDI = {"name": "x", "adapter": "nlb",
         "source": {"type": "dandi", "dandiset": "000128", "version": "0.220113.0400",
                    "assets": {"glob": "sub-*/*.nwb"}}}


def check(tmp_path: Path, entry: dict) -> None:
    p = tmp_path / "reg.yaml"
    p.write_text(yaml.safe_dump({"datasets": [entry]}))
    load_registry(p)


def edit(entry: dict, **changes) -> dict:
    """A deep copy with dotted-key changes (value None deletes the key)."""
    e = copy.deepcopy(entry)
    for key, value in changes.items():
        *parents, last = key.split("__")
        node = e
        for k in parents:
            node = node[k]
        if value is None:
            node.pop(last)
        else:
            node[last] = value
    return e


# ------------------------------------------------------------------ the real registry
#: simulated stand-ins of the FALCON layouts (their presets are named like them)
SIM_FALCON = {"sim_falcon_m2", "sim_falcon_m1", "sim_falcon_h1"}


def test_real_registry_entries():
    reg = load_registry(REAL)
    assert set(reg) == {"perich_miller_2018", "nlb_mc_maze", "nlb_mc_maze_small", "nlb_mc_rtt",
                        "nlb_area2_bump", "sim_tiny", "sim_default", "sim_multisite",
                        "falcon_m1", "falcon_m2", "falcon_h1"} | SIM_FALCON
    pins = {n: e["source"].get("version") for n, e in reg.items()
            if e["source"]["type"] == "dandi"}
    assert pins == {"perich_miller_2018": "0.250122.1735", "nlb_mc_maze": "0.220113.0400",
                    "nlb_mc_maze_small": "0.220113.0408", "nlb_mc_rtt": None,
                    "nlb_area2_bump": "0.220113.0359", "falcon_m1": "0.241029.1405",
                    "falcon_m2": None, "falcon_h1": None}
    ids = {n: e["source"]["dandiset"] for n, e in reg.items() if e["source"]["type"] == "dandi"}
    assert ids == {"perich_miller_2018": "000688", "nlb_mc_maze": "000128",
                   "nlb_mc_maze_small": "000140", "nlb_mc_rtt": "000129",
                   "nlb_area2_bump": "000127", "falcon_m1": "000941", "falcon_m2": "000953",
                   "falcon_h1": "000954"}
    assert reg["nlb_mc_rtt"]["source"]["allow_draft"] is False
    assert {n: (e["source"].get("preset"), e["source"].get("seed")) for n, e in reg.items()
            if e["source"]["type"] == "simulated"} == {
        "sim_tiny": ("tiny", 0), "sim_default": ("default", 0), "sim_multisite": ("multisite", 0),
        **{n: (n[4:], 0) for n in SIM_FALCON}}


def test_perich_miller_planned_sessions_match_reference():
    sessions = planned_sessions(get_dataset("perich_miller_2018", REAL))
    assert len(sessions) == 111 and len({s["session"] for s in sessions}) == 111
    assert sessions[0] == {"session": "sub-C_ses-CO-20131003", "subject": "C",
                           "task": "center_out", "date": "2013-10-03",
                           "asset_path": "sub-C/sub-C_ses-CO-20131003_behavior+ecephys.nwb"}
    per = Counter((s["subject"], s["task"]) for s in sessions)
    assert per == {("C", "center_out"): 53, ("C", "random_target"): 15,
                   ("J", "center_out"): 3, ("M", "center_out"): 22,
                   ("M", "random_target"): 6, ("T", "center_out"): 6,
                   ("T", "random_target"): 6}
    if REFERENCE.is_file():  # the committed manifest is the reference listing, complete
        import pandas as pd

        ref = pd.read_csv(REFERENCE, sep="\t", dtype=str)
        man = read_asset_manifest(REPO / "config" / "assets" / "000688.tsv")
        assert sorted(ref["path"]) == man["path"].tolist()
        assert man["size"].sum() == 13_179_483_710
        by_path = ref.set_index("path")
        for s in sessions:  # name parsing agrees with the reference's own columns
            row = by_path.loc[s["asset_path"]]
            assert (s["subject"], s["date"].replace("-", "")) == (row["subject"], row["date"])
            assert s["task"] == {"CO": "center_out", "RT": "random_target"}[row["task"]]


def test_real_dandi_urls_are_pinned():
    reg = load_registry(REAL)
    e = reg["perich_miller_2018"]
    v = pinned_version(e)
    assert version_url(resolve_api_url(e), e["source"]["dandiset"], v) == (
        "https://api.dandiarchive.org/api/dandisets/000688/versions/0.250122.1735/")
    first = read_asset_manifest(e["source"]["manifest"]).iloc[0]
    assert asset_url(resolve_api_url(e), "000688", v, first["asset_id"]) == (
        "https://api.dandiarchive.org/api/dandisets/000688/versions/0.250122.1735/assets/"
        "93f2d699-3b32-436e-a067-b26ce4b02225/download/")
    for name in ("nlb_mc_maze", "nlb_mc_maze_small", "nlb_area2_bump"):
        assert "/versions/0.2201" in version_url(DEFAULT_API_URL, reg[name]["source"]["dandiset"],
                                                 pinned_version(reg[name]))
        assert planned_sessions(reg[name]) is None  # no committed manifest: checkpoint


def test_unpinned_dataset_fails_with_how_to_pin(tmp_path):
    e = get_dataset("nlb_mc_rtt", REAL)
    with pytest.raises(RpntError, match=r"no pinned version; pin it by setting 'version:'"):
        pinned_version(e)
    # fails before any network access (the URL below would not answer)
    with pytest.raises(RpntError, match="pin it"):
        fetch_dataset("nlb_mc_rtt", tmp_path, registry=REAL, api_url="http://127.0.0.1:9/api")


def test_fetch_refuses_non_dandi_dataset(tmp_path):
    with pytest.raises(RpntError, match="simulated, not on DANDI; use rpnt simulate"):
        fetch_dataset("sim_tiny", tmp_path, registry=REAL)


def test_simulated_and_local_planned_sessions(tmp_path):
    from rpnt.sim.presets import session_ids

    with pytest.raises(RpntError, match="needs the simulator's session ids"):
        planned_sessions(get_dataset("sim_tiny", REAL))
    tiny = planned_sessions(get_dataset("sim_tiny", REAL), simulated=session_ids)
    assert [s["session"] for s in tiny] == list(session_ids("tiny"))
    s0 = tiny[0]
    assert s0["asset_path"] == f"sub-{s0['subject']}/{s0['session']}_behavior+ecephys.nwb"

    folder = tmp_path / "lab"
    for rel in ("sub-A/sub-A_ses-RT-20200102_behavior+ecephys.nwb",
                "sub-A/sub-A_ses-CO-20200101_behavior+ecephys.nwb", "notes.txt"):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(b"x")
    check(tmp_path, {"name": "lab", "adapter": "auto",
                     "source": {"type": "local", "folder": "lab"}})
    lab = planned_sessions(load_registry(tmp_path / "reg.yaml")["lab"])
    assert [(s["session"], s["task"]) for s in lab] == [
        ("sub-A_ses-CO-20200101", "center_out"), ("sub-A_ses-RT-20200102", "random_target")]
    check(tmp_path, {"name": "lab", "adapter": "auto",
                     "source": {"type": "local", "folder": "missing"}})
    with pytest.raises(RpntError, match=r"does not exist; fix 'source\.folder'"):
        planned_sessions(load_registry(tmp_path / "reg.yaml")["lab"])


# ---------------------------------------------------------------------- validation
@pytest.mark.parametrize("entry, message", [
    (edit(DANDI, source__verison="1"), r"\('verison' was unexpected\)"),
    (edit(DANDI, colour="red"), r"\('colour' was unexpected\)"),
    (edit(DANDI, source__dandiset="128"), r"'128' does not match"),
    (edit(DANDI, source__dandiset=128), r"128 is not of type 'string'"),
    (edit(DANDI, source__version="v1"), r"'v1' does not match"),
    (edit(DANDI, source__version="draft"), r"allow_draft"),
    (edit(DANDI, source__version="draft", source__allow_draft=False), r"True was expected"),
    (edit(DANDI, source__assets={"glob": "*", "paths": ["a.nwb"]}), r"too many properties"),
    (edit(DANDI, source__assets=None), r"'assets' is a required property"),
    (edit(DANDI, source__type="ftp"), r"'ftp' is not one of"),
    (edit(DANDI, adapter="magic"), r"'magic' is not one of"),
    (edit(DANDI, name="Bad Name"), r"'Bad Name' does not match"),
    (edit(DANDI, source={"type": "simulated", "preset": "tiny"}), r"'seed' is a required"),
    (edit(DANDI, source={"type": "simulated", "preset": "tiny", "seed": 0,
                         "dandiset": "000128"}), r"'dandiset' was unexpected"),
    (edit(DANDI, metadata={"sites": {"M1": {"coordinates": [1]}}}), r"is too short"),
])
def test_bad_entries_rejected_with_location(tmp_path, entry, message):
    with pytest.raises(RpntError, match=message) as exc:
        check(tmp_path, entry)
    text = str(exc.value)
    assert "reg.yaml: datasets[0] (" in text and "\n" not in text


def test_valid_variants_accepted(tmp_path):
    check(tmp_path, edit(DANDI, source__version="draft", source__allow_draft=True))
    check(tmp_path, edit(DANDI, source__version=None))
    check(tmp_path, edit(DANDI, source__assets={"paths": ["sub-A/a.nwb"]},
                         source__api_url="http://127.0.0.1:8000/api"))
    check(tmp_path, edit(DANDI, adapter="generic", task="reaching",
                         generic={"velocity": "processing/behavior/hand_vel",
                                  "duration_s": [0.5, 6]}))


def test_duplicate_names_and_missing_file(tmp_path):
    p = tmp_path / "reg.yaml"
    p.write_text(yaml.safe_dump({"datasets": [DANDI, DANDI]}))
    with pytest.raises(RpntError, match="defined more than once"):
        load_registry(p)
    with pytest.raises(RpntError, match="registry not found"):
        load_registry(tmp_path / "nope.yaml")
    with pytest.raises(RpntError, match=r"no dataset named 'y'; known: \['x'\]"):
        check(tmp_path, DANDI)
        get_dataset("y", tmp_path / "reg.yaml")


def test_stale_committed_manifest_rejected(tmp_path):
    (tmp_path / "m.tsv").write_text("path\tasset_id\tsize\tversion\n"
                                    "sub-A/sub-A_ses-CO-20200101_x.nwb\tid\t3\t0.1.0\n")
    check(tmp_path, edit(DANDI, source__manifest="m.tsv"))
    with pytest.raises(RpntError, match="manifest is for version"):
        planned_sessions(load_registry(tmp_path / "reg.yaml")["x"])


# ----------------------------------------------------------------- URLs and naming
def test_api_url_precedence(monkeypatch):
    e = edit(DANDI, source__api_url="http://registry/api")
    monkeypatch.delenv("RPNT_DANDI_API_URL", raising=False)
    assert resolve_api_url(DANDI) == DEFAULT_API_URL
    assert resolve_api_url(e) == "http://registry/api"
    monkeypatch.setenv("RPNT_DANDI_API_URL", "http://env/api/")
    assert resolve_api_url(e) == "http://env/api"
    assert resolve_api_url(e, "http://cli/api") == "http://cli/api"


def test_session_names_from_file_name_only():
    p = "CO-backup/sub-M/sub-M_ses-RT-20140114_behavior+ecephys.nwb"
    assert session_id_from_asset_path(p) == "sub-M_ses-RT-20140114"
    assert parse_session_id("sub-M_ses-RT-20140114") == {
        "subject": "M", "task": "random_target", "date": "2014-01-14"}
    nlb = "sub-Jenkins/sub-Jenkins_ses-full_desc-train_behavior+ecephys.nwb"
    assert session_id_from_asset_path(nlb) == "sub-Jenkins_ses-full_desc-train"
    assert parse_session_id("sub-Jenkins_ses-full_desc-train") == {
        "subject": "Jenkins", "task": None, "date": None}
    with pytest.raises(RpntError, match="not an NWB asset path"):
        session_id_from_asset_path("sub-C/sub-C_ses-CO-20131003.zarr")


def test_select_paths():
    paths = ["sub-A/a_desc-train_behavior+ecephys.nwb", "sub-A/a_desc-test_ecephys.nwb",
             "sub-B/b_desc-train_behavior+ecephys.nwb"]
    e = edit(DANDI, source__assets={"glob": "sub-*/*_desc-train_*.nwb"})
    assert select_paths(paths, e) == [paths[0], paths[2]]
    assert select_paths(paths, e, glob="sub-B/*") == [paths[2]]
    assert select_paths(paths, e, assets=[paths[0], paths[1]]) == [paths[0]]
    e = edit(DANDI, source__assets={"paths": [paths[1]]})
    assert select_paths(paths, e) == [paths[1]]


def test_default_registry_path_outside_a_checkout(tmp_path, monkeypatch):
    """The configs' registry (config/datasets.yaml) read where no such file exists, e.g.
    after a wheel install, is the registry rpnt ships; any other missing path is an error."""
    from rpnt.registry.entries import SHIPPED_REGISTRY

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RPNT_REGISTRY", raising=False)
    reg = load_registry("config/datasets.yaml")
    assert "sim_tiny" in reg and reg["sim_tiny"]["registry"] == str(SHIPPED_REGISTRY)
    with pytest.raises(RpntError, match="dataset registry not found"):
        load_registry("other/datasets.yaml")

"""The benchmark table pools sessions and seeds correctly and shows skipped rows."""

import json
import math

import numpy as np
import pytest

from rpnt.cli import main
from rpnt.errors import RpntError
from rpnt.eval.probes import load_probes
from rpnt.eval.table_files import read_table_csv, write_table
from rpnt.eval.tables import build_table, load_records


def _rec(model, scenario, session, seed, r2):
    return {"model": model, "scenario": scenario, "session": session, "seed": seed,
            "r2": {"vx": r2, "vy": r2, "mean": r2}, "n_bins": 100, "n_trials": 5,
            "split": "test", "store": {"dataset": "sim_default", "dandiset_id": "000688",
                                       "dandiset_version": "draft"},
            "provenance": {"git_commit": "abc123"}}


def _write(tmp_path, recs):
    paths = []
    for i, r in enumerate(recs):
        p = tmp_path / f"m{i}.json"
        p.write_text(json.dumps(r))
        paths.append(str(p))
    return paths


def test_mean_std_over_sessions_and_seeds(tmp_path):
    gru = {("s1", 0): 0.50, ("s1", 1): 0.60, ("s2", 0): 0.70, ("s2", 1): 0.90}
    recs = [_rec("gru", "cross_session", s, seed, v) for (s, seed), v in gru.items()]
    recs += [_rec("wiener", "cross_session", "s1", 0, 0.4),
             _rec("wiener", "cross_subject", "s3", 0, 0.3),
             _rec("wiener", "cross_subject", "s4", 0, 0.5),
             {"model": "poyo", "scenario": "cross_session", "session": "s1", "seed": 0,
              "skipped": "torch-brain not installed", "r2": None}]
    paths = _write(tmp_path, recs)
    out = tmp_path / "bench"
    assert main(["table", *paths, "--out-dir", str(out), "--name", "unit"]) == 0
    models, scenarios, cells = read_table_csv(out / "table.csv")
    assert models == ["wiener", "gru", "poyo"]
    assert scenarios == ["cross_session", "cross_subject"]
    vals = np.array(list(gru.values()))
    c = cells["gru"]["cross_session"]
    assert c["mean"] == pytest.approx(vals.mean()) and c["n"] == 4
    assert c["std"] == pytest.approx(vals.std(ddof=1))  # 0.170782...
    assert c["std"] == pytest.approx(0.1707825128)
    w = cells["wiener"]["cross_subject"]
    assert w["mean"] == pytest.approx(0.4) and w["std"] == pytest.approx(math.sqrt(0.02))
    assert math.isnan(cells["wiener"]["cross_session"]["std"])  # one record: no std
    assert cells["gru"]["cross_subject"]["note"] == "no results"
    assert cells["poyo"]["cross_session"]["note"] == "torch-brain not installed"
    md = (out / "table.md").read_text()
    assert "| gru | 0.675 ± 0.171 (n=4) | no results |" in md
    assert "torch-brain not installed" in md
    assert "dandiset 000688 version draft" in md and "`abc123`" in md


def test_config_rows_columns_and_missing_poyo(tmp_path, monkeypatch):
    import rpnt.provenance

    monkeypatch.setattr(rpnt.provenance, "poyo_available", lambda: False)
    recs = load_records(_write(tmp_path, [_rec("ceiling", "b", "s1", None, 0.9),
                                          _rec("rpnt_full", "a", "s1", 0, 0.8)]))
    cfg = {"models": ["wiener", "poyo", "rpnt_full"], "ceiling": True,
           "scenarios": {"b": {}, "a": {}}}
    t = build_table(recs, cfg)
    assert t.models == ["wiener", "poyo", "rpnt_full", "ceiling"]
    assert t.scenarios == ["b", "a"]
    assert t.cell("poyo", "a").text() == "not installed"
    assert t.cell("wiener", "b").text() == "no results"
    assert t.cell("rpnt_full", "a").text().startswith("0.800 ± n/a (n=1")


def test_duplicates_and_bad_records_are_errors(tmp_path):
    paths = _write(tmp_path, [_rec("gru", "a", "s1", 0, 0.5), _rec("gru", "a", "s1", 0, 0.6)])
    with pytest.raises(RpntError, match="duplicate"):
        write_table(paths, tmp_path / "out")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": "gru"}))
    with pytest.raises(RpntError, match=r"r2\.mean"):
        load_records([bad])
    assert not (tmp_path / "out").exists()


def test_budgets_paired_differences_and_probe(tmp_path):
    """With several budgets: one column per (scenario, budget); paired differences match
    runs on (session, seed); the probe of pretrained models gets its own section."""
    r2 = {  # (model, budget, session, seed) -> R²
        ("gru", 5, "s1", 0): 0.30, ("gru", 5, "s1", 1): 0.40, ("gru", 5, "s2", 0): 0.50,
        ("rpnt_scratch", 5, "s1", 0): 0.20, ("rpnt_scratch", 5, "s1", 1): 0.35,
        ("rpnt_joint_frozen", 5, "s1", 0): 0.45, ("rpnt_joint_frozen", 5, "s1", 1): 0.40,
        ("rpnt_joint_frozen", 5, "s2", 0): 0.70,
        ("gru", "all", "s1", 0): 0.80, ("rpnt_joint_frozen", "all", "s1", 0): 0.79,
    }
    recs = []
    for (m, b, sess, seed), v in r2.items():
        recs.append({**_rec(m, "cross_session", sess, seed, v), "budget": b})
    # the target probe of the pretrained rows (fit on the budget's trials of the target)
    tp = {"pretraining": "joint", "budget": "5", "session": "s1", "n_trials": 5,
          "pretrained": 0.4, "random": 0.3, "counts": 0.35}
    recs[5]["target_probe"] = tp
    recs[6]["target_probe"] = {**tp, "pretrained": 0.6, "random": 0.3}
    pre = tmp_path / "pre"
    pre.mkdir()
    (pre / "meta.json").write_text(json.dumps({
        "scenario": "cross_session", "seed": 0,
        "pretraining": {"objective": "joint", "variant": None},
        "probe": {"sessions": [{"session": "p1", "pretrained": 0.7, "random": 0.2,
                                "counts": 0.3},
                               {"session": "p2", "pretrained": 0.5, "random": 0.1,
                                "counts": 0.2}]}}))
    cfg = {"models": ["gru", "rpnt_scratch", "rpnt_joint_frozen"], "budgets": [5, "all"],
           "scenarios": {"cross_session": {}}}
    out = tmp_path / "out"
    t = write_table(_write(tmp_path, recs), out, cfg, pretrained=[pre])
    assert t.budgets == ["5", "all"]
    models, columns, cells = read_table_csv(out / "table.csv")
    assert models == ["gru", "rpnt_scratch", "rpnt_joint_frozen"]
    assert columns == ["cross_session@5", "cross_session@all"]
    assert cells["gru"]["cross_session@5"]["mean"] == pytest.approx(0.4)
    assert cells["rpnt_scratch"]["cross_session@all"]["note"] == "no results"
    # frozen - scratch on the runs both have: (s1, 0) +0.25, (s1, 1) +0.05
    d = t.difference("rpnt_joint_frozen", "rpnt_scratch", "cross_session", "5")
    assert sorted(d.values) == pytest.approx([0.05, 0.25]) and d.n == 2
    d = t.difference("rpnt_joint_frozen", "gru", "cross_session", "5")
    assert sorted(d.values) == pytest.approx([0.0, 0.15, 0.2])
    md = (out / "table.md").read_text()
    assert "| rpnt_joint_frozen | 0.517 ± 0.161 (n=3) | 0.790 ± n/a (n=1) |" in md
    assert "+0.150 ± 0.141 (n=2) / +0.117 ± 0.104 (n=3)" in md
    assert "| cross_session | joint | 0.600 ± 0.141 (n=2) | 0.150 ± 0.071 (n=2) | " \
           "0.250 ± 0.071 (n=2) | +0.450 ± 0.071 (n=2) |" in md
    diffs = (out / "differences.csv").read_text().splitlines()
    assert "cross_session,all,rpnt_joint_frozen,gru,-0.010000000000000009,,1" in diffs
    assert "| cross_session | joint | 5 | 0.500 ± 0.141 (n=2) | 0.300 ± 0.000 (n=2) | " \
           "0.350 ± 0.000 (n=2) | +0.200 ± 0.141 (n=2) |" in md
    assert md.index("## Probe of the pretrained features") < md.index("## Probe on the target")
    probe = (out / "probe.csv").read_text().splitlines()
    assert probe[0] == "where,scenario,pretraining,budget,seed,session,pretrained,random,counts"
    assert len(probe) == 5
    assert probe[3] == "target,cross_session,joint,5,0,s1,0.4,0.3,0.35"


def test_the_modes_of_one_pretraining_share_one_target_probe():
    tp = {"pretraining": "joint", "budget": "5", "session": "s1", "n_trials": 5,
          "pretrained": 0.4, "random": 0.3, "counts": 0.35}
    recs = [{**_rec(m, "cross_session", "s1", 0, 0.5), "budget": 5, "target_probe": tp}
            for m in ("rpnt_joint_frozen", "rpnt_joint_staged")]
    recs.append({**_rec("rpnt_joint_frozen", "cross_session", "s1", 1, 0.5), "budget": 5,
                 "target_probe": tp})
    rows = load_probes([], recs)
    assert [(r["where"], r["seed"]) for r in rows] == [("target", 0), ("target", 1)]

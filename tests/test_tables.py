"""The benchmark table pools sessions and seeds correctly and shows skipped rows."""

import json
import math

import numpy as np
import pytest

from rpnt.cli import main
from rpnt.errors import RpntError
from rpnt.eval.tables import build_table, load_records, read_table_csv, write_table


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

"""The benchmark table shows stream latency beside R² when records carry it, and only then."""

import csv
import json

import numpy as np
import pytest

from rpnt.eval.table_files import write_table


def _rec(model, session, seed, r2, latency=None):
    rec = {"model": model, "scenario": "cross_session", "session": session, "seed": seed,
           "r2": {"vx": r2, "vy": r2, "mean": r2}, "n_bins": 100, "n_trials": 5,
           "split": "test", "store": {"dataset": "sim_default"},
           "provenance": {"git_commit": "abc123"}}
    if latency is not None:  # as rpnt evaluate --stream writes it (rpnt.online.replay)
        p50, p99 = latency
        rec.update({"scoring": "stream", "stream_check_max_abs_diff": 0.0,
                    "latency": {"p50_ms": p50, "p99_ms": p99, "max_ms": p99 + 1.0,
                                "normalized_latency": p50 / 20.0, "bins": 500,
                                "threads": 1, "cpu": "AMD EPYC"}})
    return rec


def _write(tmp_path, name, recs):
    d = tmp_path / name
    d.mkdir()
    paths = []
    for i, r in enumerate(recs):
        (d / f"m{i}.json").write_text(json.dumps(r))
        paths.append(d / f"m{i}.json")
    return paths


def test_latency_section_and_csv_from_stream_records(tmp_path):
    lat = {("s1", 0): (1.0, 2.0), ("s1", 1): (3.0, 9.0), ("s2", 0): (2.0, 4.0)}
    r2 = {("s1", 0): 0.5, ("s1", 1): 0.6, ("s2", 0): 0.7}
    stream = [_rec("gru", s, seed, r2[s, seed], lat[s, seed]) for s, seed in lat]
    stitched = [_rec("wiener", "s1", 0, 0.4), _rec("wiener", "s2", 0, 0.3)]
    out = tmp_path / "with"
    write_table(_write(tmp_path, "a", stream + stitched), out, name="unit")
    md = (out / "table.md").read_text()
    assert "## Decoding online" in md
    # p50: median of the runs' p50 (2.0); p99: the largest (9.0); mean normalised latency
    norm = np.mean([p / 20.0 for p, _ in lat.values()])
    assert (f"| gru | cross_session | all | 0.600 ± 0.100 (n=3) | 2.000 | 9.000 | "
            f"{norm:.4f} | AMD EPYC |") in md
    assert "| wiener | cross_session" not in md.split("## Decoding online")[1]
    rows = list(csv.DictReader((out / "latency.csv").open()))
    assert [r["model"] for r in rows] == ["gru"]
    assert float(rows[0]["p50_ms"]) == 2.0 and float(rows[0]["max_ms"]) == 10.0
    assert float(rows[0]["r2_mean"]) == pytest.approx(0.6) and rows[0]["n"] == "3"
    # the R² grid is the same table as without the latency fields
    plain = [{k: v for k, v in r.items() if k not in ("scoring", "latency",
                                                      "stream_check_max_abs_diff")}
             for r in stream] + stitched
    ref = tmp_path / "without"
    ref.mkdir()
    (ref / "latency.csv").write_text("stale\n")  # from an earlier table: removed
    write_table(_write(tmp_path, "b", plain), ref, name="unit")
    assert (ref / "table.csv").read_text() == (out / "table.csv").read_text()
    assert not (ref / "latency.csv").exists()
    ref_md = (ref / "table.md").read_text()
    assert "Decoding online" not in ref_md
    assert md.split("## Decoding online")[0] == ref_md.split("## Provenance")[0]

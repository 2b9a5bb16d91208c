"""Manifest: one row per store with the documented columns and values."""

from __future__ import annotations

import numpy as np
import pytest
from nwb_factory import Spec, write_nwb

from rpnt.cli import main
from rpnt.errors import RpntError
from rpnt.manifest import COLUMNS, build_manifest, read_manifest
from rpnt.store import load_session


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    d = tmp_path_factory.mktemp("m")
    out = []
    for spec in (Spec(subject="T", task="RT", date="20130819", seed=1),
                 Spec(subject="C", task="CO", date="20160909", seed=2, n_units=4),
                 Spec(layout="nlb", subject="Jenkins", date="20090918", seed=3)):
        nwb = d / f"{spec.subject}.nwb"
        write_nwb(nwb, spec)
        store = d / f"{spec.subject}.zarr"
        assert main(["ingest", str(nwb), "--out", str(store), "--dataset", "dsA"]) == 0
        out.append(store)
    return out


def test_manifest_rows(stores, tmp_path):
    tsv = tmp_path / "m.tsv"
    assert main(["manifest", *map(str, stores), "--out", str(tsv)]) == 0
    df = read_manifest(tsv)
    assert tuple(df.columns) == COLUMNS
    assert df["session"].tolist() == sorted(df["session"])
    row = df.set_index("subject").loc["C"]
    assert row["session"] == "sub-C_ses-CO-20160909" and row["task"] == "center_out"
    assert row["date"] == "2016-09-09" and row["areas"] == "M1,PMd"
    assert row["sites"] == "electrode_group_M1,electrode_group_PMd"
    assert row["n_units"] == 4 and row["n_trials"] == 12 and row["n_valid"] == 10
    s = load_session(row["store"])
    rates = s.spike_counts.sum(axis=0) / (s.n_time * s.bin_size_s)
    assert row["duration_s"] == pytest.approx(s.n_time * s.bin_size_s)
    assert row["rate_mean_hz"] == pytest.approx(rates.mean())
    assert row["rate_median_hz"] == pytest.approx(np.median(rates))
    assert df.set_index("subject").loc["T", "task"] == "random_target"
    assert (df["dataset"] == "dsA").all()


def test_library_matches_file_and_rejects_duplicates(stores, tmp_path):
    df = build_manifest(stores)
    tsv = tmp_path / "m.tsv"
    main(["manifest", *map(str, stores), "--out", str(tsv)])
    back = read_manifest(tsv)
    assert back[["session", "n_units", "areas"]].equals(df[["session", "n_units", "areas"]])
    with pytest.raises(RpntError, match="more than one store"):
        build_manifest([stores[0], stores[0]])


def test_pretraining_corpus_across_datasets(stores, tmp_path):
    """rpnt pretrain --manifest A --manifest B: a 000688-layout and an NLB-layout dataset
    in one corpus; the scenario's target (subject C) stays out, both datasets come in."""
    import json

    import yaml

    from rpnt.manifest import read_corpus, write_manifest

    nlb = tmp_path / "nlb.zarr"
    assert main(["ingest", str(stores[2]).replace(".zarr", ".nwb"), "--out", str(nlb),
                 "--dataset", "nlbB"]) == 0
    a, b = tmp_path / "a.tsv", tmp_path / "b.tsv"
    write_manifest(build_manifest(stores[:2]), a)
    write_manifest(build_manifest([nlb]), b)
    with pytest.raises(RpntError, match="in more than one manifest"):
        read_corpus([a, a])
    assert read_corpus([a, b])["dataset"].tolist() == ["dsA", "dsA", "nlbB"]
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({
        "model": {"size": "tiny", "d_model": 16, "n_layers": 1, "n_spatial_layers": 1,
                  "n_heads": 2, "n_units": 8, "window": 10},
        "pretrain": {"train": {"steps": 4, "batch_size": 4, "eval_every": 4,
                               "checkpoint_every": 0}, "probe_sessions": 0},
        "scenarios": {"new_monkey": {"target": {"subject": ["C"]}}}}))
    out = tmp_path / "pre"
    assert main(["pretrain", "--config", str(cfg), "--manifest", str(a), "--manifest", str(b),
                 "--scenario", "new_monkey", "--seed", "0", "--out", str(out)]) == 0
    pre = json.loads((out / "meta.json").read_text())["pretraining"]
    assert pre["datasets"] == ["dsA", "nlbB"] and pre["bin_size_s"] == pytest.approx(0.02)
    assert sorted(pre["pretrain_sessions"]) == sorted(
        [s for s in read_corpus([a, b])["session"] if not s.startswith("sub-C")])

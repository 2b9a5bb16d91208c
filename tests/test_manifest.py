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

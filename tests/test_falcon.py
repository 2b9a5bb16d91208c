"""FALCON: files in the three real layouts ingest to stores whose counts equal FALCON's
``bin_units`` and whose covariates equal ``load_nwb``; D covariates end to end; the
variance-weighted R²; the split as a scenario selector; the registry entries.

The fixtures are written from the layouts FALCON documents (tests/falcon_factory.py), not
by our simulator. The official package's part runs only where ``falcon_challenge``
imports (the optional ``falcon`` extra); the rest checks the same rule against a plain
reading of ``bin_units``' documented algorithm.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from falcon_factory import write_h1, write_m1, write_m2

from rpnt.data.scenarios import match_sessions
from rpnt.errors import RpntError
from rpnt.ingest import IngestConfig, ingest_file
from rpnt.ingest.falcon import bin_edges
from rpnt.registry.entries import get_dataset, planned_sessions
from rpnt.scoring.metrics import r2_report, r2_variance_weighted
from rpnt.store import load_session

HAS_FALCON = importlib.util.find_spec("falcon_challenge") is not None
needs_falcon = pytest.mark.skipif(
    not HAS_FALCON, reason="falcon-challenge not installed (optional extra 'falcon'; it "
                           "needs hydra-core): checked against the documented rule instead")
REGISTRY = "config/datasets.yaml"
WRITERS = {"m2": write_m2, "m1": write_m1, "h1": write_h1}


def reference_counts(spikes, stamps, starts: bool, bin_s: float = 0.02) -> np.ndarray:
    """``bin_units`` as documented, written plainly: one bin per stamp (its end, or its
    start + bin_s); a gap longer than bin_s gets a padding bin that is dropped; per unit
    ``np.histogram`` over the edges."""
    ends = list(np.asarray(stamps, float) + (bin_s if starts else 0.0))
    gaps = np.diff(ends)
    new_ends, mask = [ends[0]], [True]
    uneven = not np.allclose(gaps, bin_s)
    for i, gap in enumerate(gaps):
        if uneven and not np.isclose(gap, bin_s) and gap > bin_s:
            new_ends += [ends[i + 1] - bin_s, ends[i + 1]]
            mask += [False, True]
        else:
            new_ends.append(ends[i + 1])
            mask.append(True)
    edges = np.concatenate([[new_ends[0] - bin_s], new_ends])
    out = np.stack([np.histogram(s, bins=edges)[0] for s in spikes], axis=1)
    return out[np.array(mask)]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("falcon")
    out = {}
    for layout, write in WRITERS.items():
        sid = {"m2": "sub-MonkeyN-held-in-calib_ses-2020-10-19-Run1",
               "m1": "sub-MonkeyL-held-out-calib_ses-20121004",
               "h1": "sub-HumanPitt-held-in-calib_ses-19250108T110520"}[layout]
        nwb = root / f"{sid.split('_')[0]}/{sid}_behavior+ecephys.nwb"
        truth = write(nwb, session_id=sid)
        store = ingest_file(nwb, root / f"{layout}.zarr", registry=REGISTRY,
                            cfg=IngestConfig(adapter="auto", dataset=f"falcon_{layout}"))
        out[layout] = (nwb, truth, load_session(store))
    return out


def test_bin_edges_pad_long_gaps_only():
    edges, keep = bin_edges(np.array([0.02, 0.04, 0.5, 0.513]), 0.02)
    assert np.allclose(edges, [0.0, 0.02, 0.04, 0.48, 0.5, 0.513])
    assert keep.tolist() == [True, True, False, True, True]
    edges, keep = bin_edges(np.array([1.0, 1.02, 1.04]), 0.02, stamps_are_starts=True)
    assert np.allclose(edges, [1.0, 1.02, 1.04, 1.06]) and keep.all()
    with pytest.raises(RpntError, match="do not increase"):
        bin_edges(np.array([0.0, 0.0]))


@pytest.mark.parametrize("layout", ["m2", "m1", "h1"])
def test_counts_and_covariates_follow_falcon(stores, layout):
    _nwb, truth, s = stores[layout]
    starts = layout == "m2"
    stamps = truth.bin_ends - (0.02 if starts else 0.0)
    ref = reference_counts(truth.spikes, stamps, starts)
    assert s.spike_counts.shape == ref.shape == (truth.covariates.shape[0], len(truth.spikes))
    np.testing.assert_array_equal(s.spike_counts, ref)
    np.testing.assert_array_equal(s.velocity, truth.covariates.astype(np.float32))
    np.testing.assert_array_equal(s.eval_mask, truth.eval_mask)
    assert s.covariate_names == truth.names
    assert s.attrs["r2_weighting"] == "variance_weighted"
    assert s.attrs["falcon_layout"] == layout
    np.testing.assert_allclose(s.trial_start, truth.trial_start)
    np.testing.assert_allclose(s.trial_stop, truth.trial_stop)
    # a bin starts 20 ms before its end, or at the previous end when that is closer
    width = truth.bin_ends - s.time
    assert np.all(width <= 0.02 + 1e-9) and np.all(width > 0)
    assert np.isclose(width, 0.02).sum() >= width.size - 1


@needs_falcon
@pytest.mark.parametrize("layout", ["m2", "m1", "h1"])
def test_store_equals_official_load_nwb(stores, layout):
    from falcon_challenge.config import FalconTask
    from falcon_challenge.dataloaders import load_nwb

    nwb, _truth, s = stores[layout]
    spikes, cov, _change, emask = load_nwb(nwb, dataset=getattr(FalconTask, layout))
    np.testing.assert_array_equal(s.spike_counts, spikes)
    np.testing.assert_array_equal(s.velocity, np.asarray(cov, np.float32))
    np.testing.assert_array_equal(s.eval_mask, emask)


def test_split_in_name_is_checked_and_selectable(tmp_path, stores):
    _nwb, _truth, s = stores["m1"]
    assert s.attrs["falcon_split"] == "held_out_calib" and s.session.startswith("sub-MonkeyL")
    # a held-in day under a held-out name contradicts the evaluator's lists
    bad = tmp_path / "sub-MonkeyL-held-out-calib_ses-20120924_behavior+ecephys.nwb"
    write_m1(bad, session_id="sub-MonkeyL-held-out-calib_ses-20120924")
    with pytest.raises(RpntError, match=r"falcon\.held_out"):
        ingest_file(bad, tmp_path / "bad.zarr", registry=REGISTRY,
                    cfg=IngestConfig(dataset="falcon_m1"))
    assert not (tmp_path / "bad.zarr").exists()
    import pandas as pd
    table = pd.DataFrame({"session": ["a", "b", "c"],
                          "split": ["held_in_calib", "held_in_minival", "held_out_calib"]})
    assert match_sessions(table, {"split": "held_out"}).tolist() == [False, False, True]
    assert match_sessions(table, {"split": ["held_in"]}).tolist() == [True, True, False]
    assert match_sessions(table, {"split": "held_in_minival"}).tolist() == [False, True, False]


def test_registry_entries_plan_sessions_with_their_split():
    m1 = get_dataset("falcon_m1", REGISTRY)
    assert m1["source"]["version"] == "0.241029.1405" and m1["adapter"] == "falcon"
    assert get_dataset("falcon_m2", REGISTRY)["falcon"]["held_out"][0] == "Run1_20201030"
    assert get_dataset("falcon_h1", REGISTRY)["falcon"]["layout"] == "h1"
    from rpnt.registry.naming import session_record
    rec = session_record("sub-MonkeyN-held-out-calib/sub-MonkeyN-held-out-calib_ses-2020-11-"
                         "18-Run1_behavior+ecephys.nwb")
    assert (rec["subject"], rec["date"], rec["split"]) == ("MonkeyN", "2020-11-18",
                                                           "held_out_calib")
    assert planned_sessions(m1) is None  # no committed asset manifest: listed at run time


def test_variance_weighted_r2_is_sklearns():
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(0)
    y = rng.normal(size=(200, 5)) * np.array([1.0, 5.0, 0.2, 2.0, 9.0])
    pred = y + rng.normal(size=y.shape)
    assert r2_variance_weighted(y, pred) == pytest.approx(
        r2_score(y, pred, multioutput="variance_weighted"), abs=1e-12)
    rep = r2_report(y, pred, [f"emg{i}" for i in range(5)], variance_weighted=True)
    assert list(rep) == [*(f"emg{i}" for i in range(5)), "mean", "variance_weighted"]
    # weighting by variance differs from the plain mean when the variances differ
    assert abs(rep["variance_weighted"] - rep["mean"]) > 0.05
    with pytest.raises(ValueError, match="clash"):
        r2_report(y[:, :2], pred[:, :2], ["mean", "x"])


@needs_falcon
def test_variance_weighted_r2_is_the_official_metric():
    from falcon_challenge.evaluator import FalconEvaluator

    rng = np.random.default_rng(1)
    y = [rng.normal(size=(n, 3)) * [1, 4, 0.5] for n in (80, 120)]
    p = [a + rng.normal(size=a.shape) for a in y]
    mask = np.ones(200, bool)
    official = FalconEvaluator.compute_metrics_regression(
        np.concatenate(p), np.concatenate(y), mask, {"a": [80], "b": [120]})
    ours = [r2_variance_weighted(a, b) for a, b in zip(y, p, strict=True)]
    assert official["R2 Mean"] == pytest.approx(np.mean(ours), abs=1e-9)
    assert official["R2 Std."] == pytest.approx(np.std(ours), abs=1e-9)


def _vw_record(seed: int = 3):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(150, 4)) * [1.0, 3.0, 0.5, 2.0]
    p = y + rng.normal(size=y.shape)
    return {"session": "s", "r2": r2_report(y, p, list("abcd"), variance_weighted=True)}, y, p


def test_record_says_where_its_falcon_metric_comes_from(monkeypatch):
    from rpnt.eval import falcon_metric

    monkeypatch.setattr(falcon_metric, "falcon_available", lambda: False)
    rec, y, p = _vw_record()
    before = rec["r2"]["variance_weighted"]
    falcon_metric.apply_official(rec, y, p)
    assert rec["r2_source"] == falcon_metric.OURS and rec["r2"]["variance_weighted"] == before
    plain = {"r2": r2_report(y, p)}  # not a FALCON store: untouched
    falcon_metric.apply_official(plain, y, p)
    assert "r2_source" not in plain


@needs_falcon
def test_record_takes_the_official_value():
    from rpnt.eval.falcon_metric import apply_official

    rec, y, p = _vw_record()
    ours = rec["r2"]["variance_weighted"]
    apply_official(rec, y, p)
    assert "falcon-challenge" in rec["r2_source"]
    assert rec["r2"]["variance_weighted"] == pytest.approx(ours, abs=1e-9)


def test_table_pools_the_configured_metric(tmp_path):
    import json

    from rpnt.eval.table_files import write_table

    paths = []
    for i, (mean, vw) in enumerate([(0.5, 0.7), (0.3, 0.6)]):
        p = tmp_path / f"m{i}.json"
        p.write_text(json.dumps({"model": "gru", "scenario": "held_out", "session": f"s{i}",
                                 "seed": 0, "r2": {"a": mean, "mean": mean,
                                                   "variance_weighted": vw}}))
        paths.append(p)
    table = write_table(paths, tmp_path / "t", config={"metric": "variance_weighted",
                                                       "scenarios": {"held_out": {}}})
    assert table.cell("gru", "held_out").mean == pytest.approx(0.65)
    assert "variance-weighted" in (tmp_path / "t" / "table.md").read_text()
    plain = write_table(paths, tmp_path / "u")
    assert plain.cell("gru", "held_out").mean == pytest.approx(0.4)


def test_real_config_plans_held_out_targets_from_an_asset_list(tmp_path):
    """What the workflow plans once list_assets has listed DANDI 000941: the held-out
    calibration files are the few-shot targets, the minival files the held-in targets,
    and neither enters the held-out scenario's pretraining."""
    from rpnt.configfile import load_yaml
    from rpnt.data.scenarios import scenario_from_config
    from rpnt.workflow.datasets import sessions_from_asset_tsv, target_sessions

    days = {"held-in-calib": ["20120924", "20120926", "20120927", "20120928"],
            "held-in-minival": ["20120924", "20120926", "20120927", "20120928"],
            "held-out-calib": ["20121004", "20121017", "20121024"]}
    rows = ["path\tasset_id\tsize\tsha256\tdandiset_id\tversion"]
    for split, ds in days.items():
        for d in ds:  # the file names of falcon-challenge's data_demos/m1.ipynb
            rows.append(f"sub-MonkeyL-{split}/sub-MonkeyL-{split}_ses-{d}_behavior+ecephys.nwb"
                        f"\tid-{split}-{d}\t1\t{'0' * 64}\t000941\t0.241029.1405")
    tsv = tmp_path / "assets.tsv"
    tsv.write_text("\n".join(rows) + "\n")
    cfg = load_yaml("config/benchmarks/falcon_m1.yaml")
    sessions = sessions_from_asset_tsv(get_dataset("falcon_m1", REGISTRY), tsv)
    targets = target_sessions(cfg, sessions)
    assert targets["held_out"] == [f"sub-MonkeyL-held-out-calib_ses-{d}"
                                   for d in days["held-out-calib"]]
    assert targets["held_in"] == [f"sub-MonkeyL-held-in-minival_ses-{d}"
                                  for d in days["held-in-minival"]]
    import pandas as pd
    table = pd.DataFrame([{"dataset": "falcon_m1", **{k: s.get(k) for k in
                           ("session", "subject", "task", "date", "split")}}
                          for s in sessions])
    calib = {f"sub-MonkeyL-held-in-calib_ses-{d}" for d in days["held-in-calib"]}
    for name in ("held_out", "held_in"):  # neither sees a held-out or minival file
        assert set(scenario_from_config(cfg, name, table).pretrain_sessions) == calib


@pytest.fixture(scope="module")
def sim_m1(tmp_path_factory):
    """One held-out day of the FALCON M1 stand-in (16 EMG-like covariates), ingested."""
    from rpnt.sim.falcon import write_falcon_nwb
    from rpnt.sim.presets import get_preset
    from rpnt.sim.session import simulate_session

    root = tmp_path_factory.mktemp("sim_m1")
    preset = get_preset("falcon_m1")
    spec = preset.sessions[-1]
    nwb = root / spec.relpath
    nwb.parent.mkdir(parents=True)
    write_falcon_nwb(simulate_session(preset, spec, 0), nwb, "m1")
    store = ingest_file(nwb, root / "s.zarr", registry=REGISTRY,
                        cfg=IngestConfig(dataset="sim_falcon_m1"))
    return nwb, load_session(store)


def test_decoders_decode_sixteen_named_covariates(sim_m1, tmp_path):
    """Peers and RPNT train on and predict the store's 16 covariates; the score names
    each one and carries FALCON's metric."""
    from rpnt.model.config import RPNTConfig
    from rpnt.scoring.stitch import evaluate_session
    from rpnt.train.config import FinetuneConfig, TrainConfig
    from rpnt.train.finetune import finetune
    from rpnt.train.peers import train_baseline

    _nwb, s = sim_m1
    assert s.n_axis == 16 and s.attrs["falcon_split"] == "held_out_calib"
    quick = {"train": {"steps": 3, "batch_size": 4, "eval_every": 3}}
    decoders = {m: train_baseline(m, s, sec, seed=0)[0]
                for m, sec in (("wiener", {"lags": 2}), ("gru", {"hidden": 8, **quick}))}
    cfg = RPNTConfig.preset("tiny", n_axis=16, readin="session")
    decoders["rpnt"] = finetune(s, "scratch", FinetuneConfig(train=TrainConfig(
        steps=2, batch_size=4, eval_every=2, checkpoint_every=2)), 0, cfg,
        selection="none")[0]
    for name, dec in decoders.items():
        r2 = evaluate_session(dec, s).r2
        assert list(r2)[:16] == s.covariate_names, name
        assert np.isfinite(r2["variance_weighted"]) and np.isfinite(r2["mean"]), name
    # the Wiener filter decodes the rectified (nonlinear) mixtures above chance (R² 0)
    score = evaluate_session(decoders["wiener"], s)
    assert score.r2["variance_weighted"] > 0.1
    # predictions keep the covariates' names and units for the figure
    import json

    from rpnt.eval.evaluate import save_predictions
    from rpnt.eval.figures import plot_predictions
    npz = save_predictions(tmp_path / "p.npz", s, score, model="wiener")
    meta = json.loads(str(np.load(npz)["meta"]))
    assert meta["covariates"] == s.covariate_names and meta["covariate_units"].startswith("mV")
    assert plot_predictions(npz, tmp_path / "p.png").stat().st_size > 0
    wrong = RPNTConfig.preset("tiny", n_axis=2)
    with pytest.raises(RpntError, match=r"model\.n_axis"):
        finetune(s, "scratch", FinetuneConfig(), 0, wrong)


def test_ingest_command_offers_every_adapter():
    import argparse

    from rpnt.commands import ingest as cmd
    from rpnt.ingest.adapters import ADAPTERS

    p = argparse.ArgumentParser()
    cmd.add_arguments(p)
    choices = next(a.choices for a in p._actions if a.dest == "adapter")
    assert set(choices) == {"auto", *ADAPTERS}


def test_poyo_times_each_output_at_its_own_bin_on_gapped_bins(stores):
    """FALCON M2's bins jump between trials: POYO (the one peer that reads spike times)
    asks for each output at its bin's own time and reads the spikes up to the window's
    last bin, not ``length`` bins of time from its start."""
    pytest.importorskip("torch_brain", reason="POYO needs torch-brain (the peers extra)")
    from rpnt.decoders.poyo import POYODecoder
    from rpnt.train.peers import train_baseline

    _nwb, _truth, s = stores["m2"]
    assert not s.contiguous and stores["m1"][2].contiguous
    dec, _info = train_baseline("poyo", s, {"dim": 16, "depth": 1, "window_bins": 20,
                                            "train": {"steps": 1, "batch_size": 2}}, seed=0)
    assert isinstance(dec, POYODecoder)
    start = 50  # the window [50, 70) crosses the 0.3 s gap after bin 59
    tok = dec.tokens(s, np.array([start, 0]), 20)
    want = s.time[start:start + 20] - s.time[start] + 0.01
    np.testing.assert_allclose(tok["output_timestamps"][0].cpu().numpy(), want, atol=1e-6)
    assert want[-1] > 20 * 0.02  # later than a contiguous window would reach

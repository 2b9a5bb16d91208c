"""Figures are drawn from real outputs (metrics, predictions npz, metrics.jsonl, RPNT)."""

import json

import numpy as np
import pytest
import torch
from eval_helpers import synthetic_session, write_session_store

from rpnt.cli import main
from rpnt.decoders.base import Decoder, save_decoder
from rpnt.eval.evaluate import save_predictions
from rpnt.scoring.stitch import evaluate_session

torch.set_num_threads(1)
PNG = b"\x89PNG"


class NoisyTruth(Decoder):
    kind = "test_noisy"

    def predict_windows(self, session, starts, length):
        idx = np.asarray(starts)[:, None] + np.arange(length)
        v = session.velocity[idx].astype(float)
        return v + np.random.default_rng(0).normal(0, 3.0, v.shape)


def _metrics(tmp_path):
    paths = []
    for i, (model, sc, r2) in enumerate([("gru", "a", 0.5), ("gru", "a", 0.6),
                                         ("wiener", "a", 0.4), ("gru", "b", 0.7)]):
        p = tmp_path / f"m{i}.json"
        p.write_text(json.dumps({"model": model, "scenario": sc, "session": f"s{i}",
                                 "seed": 0, "r2": {"mean": r2}}))
        paths.append(str(p))
    return paths


def test_all_figures_from_workflow_outputs(tmp_path):
    s = synthetic_session(0, n_trial=12)
    score = evaluate_session(NoisyTruth({}), s, length=20)
    pred = tmp_path / "p.npz"
    save_predictions(pred, s, score, model="gru", scenario="a", seed=0)
    run = tmp_path / "run"
    run.mkdir()
    (run / "meta.json").write_text(json.dumps({"kind": "gru", "model": "gru",
                                               "scenario": "a", "seed": 0}))
    (run / "metrics.jsonl").write_text("".join(
        json.dumps(r) + "\n" for r in [{"step": 10, "loss": 1.0}, {"step": 20, "loss": 0.5},
                                       {"step": 20, "val_loss": 0.7}]))
    out = tmp_path / "figs"
    assert main(["figures", "--metrics", *_metrics(tmp_path), "--predictions", str(pred),
                 "--runs", str(run), "--out-dir", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["curves_gru.png", "predictions_a.png", "r2.png"]
    for p in out.iterdir():
        assert p.read_bytes()[:4] == PNG
    with np.load(pred) as z:
        assert z["scored"].sum() == score.n_bins
        np.testing.assert_allclose(z["pred"][z["scored"]], score.pred[score.mask])
        assert json.loads(str(z["meta"]))["model"] == "gru"


def test_single_figure_subcommands(tmp_path):
    assert main(["table", *_metrics(tmp_path), "--out-dir", str(tmp_path / "t")]) == 0
    assert main(["figures", "r2", "--table", str(tmp_path / "t" / "table.csv"),
                 "--out", str(tmp_path / "r2.png")]) == 0
    assert (tmp_path / "r2.png").read_bytes()[:4] == PNG
    jsonl = tmp_path / "metrics.jsonl"
    jsonl.write_text(json.dumps({"step": 1, "loss": 2.0}) + "\n")
    assert main(["figures", "curves", "--runs", str(jsonl), "--out",
                 str(tmp_path / "c.png")]) == 0
    assert main(["figures", "curves", "--runs", str(tmp_path / "nope"), "--out",
                 str(tmp_path / "d.png")]) == 2
    assert not (tmp_path / "d.png").exists()


def test_attention_map_of_a_multisite_rpnt(tmp_path):
    pytest.importorskip("rpnt.model")
    from rpnt.data.batches import Vocab
    from rpnt.decoders.rpnt_decoder import RPNTDecoder
    from rpnt.eval.figures import spatial_attention
    from rpnt.model import RPNTConfig

    s = synthetic_session(0, n_trial=12, n_unit=16)
    assert len(s.sites) == 2
    cfg = RPNTConfig.preset("tiny", n_units=8, window=20, dropout=0.0)
    torch.manual_seed(0)
    dec = RPNTDecoder.build(cfg, Vocab.from_sessions([s]))
    save_decoder(dec, tmp_path / "rpnt")
    maps, sites = spatial_attention(tmp_path / "rpnt", s)
    assert maps.shape == (cfg.n_spatial_layers, 2, 2) and sites == s.sites
    np.testing.assert_allclose(maps.sum(-1), 1.0, rtol=1e-5)  # rows are probabilities
    store = write_session_store(s, tmp_path / "s.zarr")
    assert main(["figures", "attention", "--model", str(tmp_path / "rpnt"), "--store", store,
                 "--out", str(tmp_path / "att.png")]) == 0
    assert (tmp_path / "att.png").read_bytes()[:4] == PNG


def test_all_figures_draw_attention_from_the_run_store(tmp_path):
    pytest.importorskip("rpnt.model")
    from rpnt.data.batches import Vocab
    from rpnt.decoders.rpnt_decoder import RPNTDecoder
    from rpnt.eval.figure_set import write_all_figures
    from rpnt.model import RPNTConfig

    s = synthetic_session(0, n_trial=12, n_unit=16)
    store = write_session_store(s, tmp_path / "s.zarr")
    cfg = RPNTConfig.preset("tiny", n_units=8, window=20, dropout=0.0)
    torch.manual_seed(0)
    run = tmp_path / "rpnt_full"
    save_decoder(RPNTDecoder.build(cfg, Vocab.from_sessions([s])), run, model="rpnt_full",
                 scenario="a", session=s.session, seed=0)
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 1.0}) + "\n")
    rec = tmp_path / "m.json"
    rec.write_text(json.dumps({"model": "rpnt_full", "scenario": "a", "session": s.session,
                               "seed": 0, "r2": {"mean": 0.5}, "store_path": store}))
    paths = write_all_figures(tmp_path / "figs", None, [rec], [], [run])
    assert sorted(p.name for p in paths) == ["attention_a.png", "curves_rpnt_full.png",
                                             "r2.png"]
    assert (tmp_path / "figs" / "attention_a.png").read_bytes()[:4] == PNG

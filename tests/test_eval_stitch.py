"""Stitching averages overlapping windows; only test ∩ eval_mask ∩ finite bins are scored."""

import numpy as np
import pytest
from eval_helpers import synthetic_session

from rpnt.decoders.base import Decoder
from rpnt.scoring.metrics import r2_report
from rpnt.scoring.stitch import evaluate_session, scored_mask, stitch


class StartDecoder(Decoder):
    """Predicts the window's start index for every bin and axis (tests the averaging)."""

    kind = "test_start"

    def predict_windows(self, session, starts, length):
        return np.broadcast_to(np.asarray(starts, float)[:, None, None],
                               (len(starts), length, session.velocity.shape[1])).copy()


class CheatDecoder(Decoder):
    """Exact velocity on scored bins, a large error everywhere else."""

    kind = "test_cheat"

    def predict_windows(self, session, starts, length):
        idx = np.asarray(starts)[:, None] + np.arange(length)
        good = scored_mask(session, "test")[idx]
        truth = session.velocity[idx].astype(float)
        return np.where(good[..., None], truth, -truth + 50.0)


def test_stitch_averages_overlapping_windows():
    s = synthetic_session(0, n_trial=12)
    mask = s.trial_bins("test")
    length = 20
    pred, count = stitch(StartDecoder({}), s, mask, length)
    # brute force: every window of the 50 %-overlap grid that touches a masked bin
    grid = list(range(0, s.n_time - length + 1, length // 2))
    if grid[-1] != s.n_time - length:
        grid.append(s.n_time - length)
    used = [g for g in grid if mask[g:g + length].any()]
    expect_sum = np.zeros(s.n_time)
    expect_n = np.zeros(s.n_time, int)
    for g in used:
        expect_sum[g:g + length] += g
        expect_n[g:g + length] += 1
    np.testing.assert_array_equal(count, expect_n)
    covered = expect_n > 0
    np.testing.assert_allclose(pred[covered, 0], expect_sum[covered] / expect_n[covered])
    assert np.isnan(pred[~covered]).all()
    assert (count[mask] >= 1).all()
    assert (count[mask] == 2).sum() > 0.5 * mask.sum()  # interior bins really are averaged


def test_only_test_evalmask_finite_bins_are_scored():
    s = synthetic_session(1, n_trial=20)
    s.velocity[np.flatnonzero(s.trial_bins("test") & s.eval_mask)[:3]] = np.nan
    mask = scored_mask(s, "test")
    assert mask.sum() > 0
    assert not (mask & ~s.eval_mask).any() and not (mask & ~s.trial_bins("test")).any()
    assert np.isfinite(s.velocity[mask]).all()
    score = evaluate_session(CheatDecoder({}), s, length=20)
    # scoring exactly the right bins gives a perfect R²; any other bin would break it
    assert score.r2["mean"] == pytest.approx(1.0)
    assert score.n_bins == int(mask.sum())
    assert score.n_trials == int((s.trial_split == "test").sum())
    # the same decoder scored on all test-trial bins (ignoring eval_mask) is far worse
    wide = s.trial_bins("test") & np.isfinite(s.velocity).all(1)
    pred, _ = stitch(CheatDecoder({}), s, wide, 20)
    assert r2_report(s.velocity[wide], pred[wide])["mean"] < 0.5


def test_metrics_are_fresh_per_call():
    s = synthetic_session(2, n_trial=12)
    a = evaluate_session(StartDecoder({}), s, length=20)
    b = evaluate_session(CheatDecoder({}), s, length=20)
    c = evaluate_session(StartDecoder({}), s, length=20)
    assert a.r2 == c.r2 and a.n_bins == c.n_bins
    assert b.r2["mean"] == pytest.approx(1.0)


def test_window_length_follows_the_decoder():
    from types import SimpleNamespace

    from rpnt.scoring.stitch import DEFAULT_WINDOW_BINS, window_length

    assert window_length(StartDecoder({"window_bins": 17})) == 17
    dec = StartDecoder({})
    assert window_length(dec) == DEFAULT_WINDOW_BINS
    dec.config = SimpleNamespace(window=30)  # as RPNTDecoder.config (an RPNTConfig)
    assert window_length(dec) == 30

"""Properties of the generative model, measured on simulated data (not read off parameters)."""

import numpy as np
import pytest

from rpnt.sim.kinematics import DT
from rpnt.sim.neural import REFRACTORY_S
from rpnt.sim.nwb import glitched_kinematics
from rpnt.sim.presets import PRESETS, SessionSpec
from rpnt.sim.session import simulate_session, subject_model
from tests.sim_helpers import preset_with


@pytest.fixture(scope="module")
def model_c():
    return subject_model(0, PRESETS["default"].subjects["C"])


def _sim(spec, model):
    return simulate_session(preset_with(spec), spec, 0, model)


@pytest.fixture(scope="module")
def co_2013(model_c):
    return _sim(SessionSpec("C", "CO", "20131003", 60), model_c)


def _r2_shift(rates, vel, shift):
    """R² of least squares vel(t + shift) ~ log rates(t) (shift in samples, subsampled)."""
    n = rates.shape[0]
    t = np.arange(max(0, -shift), min(n, n - shift), 4)
    X = np.column_stack([np.log(rates[t] + 0.5), np.ones(t.size)])
    Y = vel[t + shift]
    half = t.size // 2
    W, *_ = np.linalg.lstsq(X[:half], Y[:half], rcond=None)
    res = Y[half:] - X[half:] @ W
    return 1 - (res**2).sum() / ((Y[half:] - Y[half:].mean(0)) ** 2).sum()


def test_m1_leads_movement_and_pmd_prepares(co_2013):
    sim = co_2013
    areas = np.array([sim.subject.sites[s].area for s in sim.unit_site])
    m1 = areas == "M1"
    rates, vel = sim.rates.astype(np.float64), sim.behaviour.vel
    shifts = np.arange(-40, 41, 5)  # samples of 5 ms: -200..+200 ms
    r2 = np.array([_r2_shift(rates[:, m1], vel, int(s)) for s in shifts])
    best_ms = shifts[r2.argmax()] * DT * 1000
    assert 50 <= best_ms <= 175, (best_ms, r2.round(3))  # M1 activity leads velocity
    assert r2.max() > r2[shifts == -20][0] + 0.05  # lagging is clearly worse than leading

    # Delay period (target on + 200 ms .. go cue): target-specific activity, PMd > M1.
    tr = sim.behaviour.trials
    ok = (tr["result"] == "R") & (tr["go_cue_time"] - tr["target_on_time"] > 0.5)
    lo = ((tr["target_on_time"][ok] + 0.2) / DT).astype(int)
    hi = (tr["go_cue_time"][ok] / DT).astype(int)
    mean_delay = np.stack([rates[a:b].mean(0) for a, b in zip(lo, hi, strict=True)])
    target = tr["target_id"][ok]
    between = np.stack([mean_delay[target == k].mean(0) for k in np.unique(target)]).var(0)
    frac = between / (mean_delay.var(0) + 1e-9)
    assert np.median(frac[~m1]) > np.median(frac[m1]) + 0.1


def test_spike_statistics(co_2013):
    sim = co_2013
    # refractoriness: no inter-spike interval below the refractory period within a unit
    same = sim.spike_unit[1:] == sim.spike_unit[:-1]
    assert (np.diff(sim.spike_times)[same] >= REFRACTORY_S).all()
    dur = sim.behaviour.time[-1]
    mean_rate = np.bincount(sim.spike_unit, minlength=sim.n_units) / dur
    # heterogeneous, log-normal-like rates: low-rate units exist, most are 1-60 Hz
    assert mean_rate.min() < 1.5 and np.median(mean_rate) > 3 and mean_rate.max() < 120
    assert ((mean_rate > 1) & (mean_rate < 60)).mean() > 0.8
    # over-dispersion: counts in 100 ms windows vary more than Poisson given the true rate
    k = round(0.1 / DT)
    n = (sim.rates.shape[0] // k) * k
    expected = sim.rates[:n].reshape(-1, k, sim.n_units).sum(1) * DT
    edges = np.arange(0, n + 1, k) * DT
    counts = np.stack([np.histogram(sim.spike_times[sim.spike_unit == u], edges)[0]
                       for u in range(sim.n_units)], axis=1)
    assert abs(counts.sum() / expected.sum() - 1) < 0.05  # spikes follow the rates
    # Fano factor of counts across the session (rate modulation + trial gains) > 1
    busy = counts.mean(0) > 0.5
    assert np.median(counts[:, busy].var(0) / counts[:, busy].mean(0)) > 1.2


def test_behaviour_realism(co_2013):
    b = co_2013.behaviour
    speed = np.hypot(*b.vel.T)
    assert 20 < np.percentile(speed, 99) < 80  # cm/s, peak reach speeds
    assert np.abs(b.pos).max() < 10  # clean cursor stays on screen
    res = b.trials["result"]
    assert set(res) == set("RAFI") and (res == "R").mean() > 0.7
    # artefacts in the recorded behaviour follow the 000688 outlier markers
    ts, pos, _vel, acc = glitched_kinematics(co_2013)
    for t0, t1 in b.glitches:
        inside = (ts >= t0) & (ts < t1)
        assert (np.abs(pos[inside]) > 10).all()
        edge = np.flatnonzero(inside)[[0, -1]]
        assert (np.abs(acc[edge]) > 1500).any()


def test_tuning_drifts_with_recording_date(model_c):
    """Preferred directions of the same neurons change over years, barely over a day."""
    def pds(sim):
        lead = 20  # 100 ms
        x = np.log(sim.rates[:-lead].astype(np.float64) + 0.5)
        v = sim.behaviour.vel[lead:]
        A = np.column_stack([v, np.ones(len(v))])
        W, *_ = np.linalg.lstsq(A, x, rcond=None)
        return dict(zip(sim.units.tolist(), np.arctan2(W[1], W[0]), strict=True)), \
            dict(zip(sim.units.tolist(), np.hypot(W[0], W[1]), strict=True))

    a = _sim(SessionSpec("C", "CO", "20131003", 25), model_c)
    b = _sim(SessionSpec("C", "CO", "20131004", 25), model_c)
    c = _sim(SessionSpec("C", "CO", "20161013", 25), model_c)
    (pa, ga), (pb, _), (pc, _) = pds(a), pds(b), pds(c)

    def change(p, q):
        shared = [u for u in p if u in q and ga[u] > np.percentile(list(ga.values()), 50)]
        d = np.angle(np.exp(1j * (np.array([p[u] for u in shared])
                                   - np.array([q[u] for u in shared]))))
        return np.median(np.abs(d))

    assert change(pa, pc) > 2 * change(pa, pb)
    assert np.rad2deg(change(pa, pc)) > 15

"""Synthetic sessions for the training tests: Poisson counts from velocity-tuned units.

Each subject has a fixed pool of cosine-tuned neurons per site; a session records a random
subset of the pool, so sessions of one subject share structure (what pretraining can
learn) while unit identities differ between sessions (what finetuning must adapt to).
"""

from __future__ import annotations

import numpy as np

from rpnt.data.scenarios import parse_session_id
from rpnt.data.session import SPLIT_CODES, SessionData

BIN_S = 0.02
SPLIT_CYCLE = ("train", "train", "train", "train", "train", "train", "valid", "test")


def smooth_velocity(rng: np.random.Generator, n: int, scale: float = 15.0) -> np.ndarray:
    """(n, 2) smooth velocity (cm/s): white noise low-passed by a 0.3 s Gaussian kernel."""
    noise = rng.normal(size=(n + 200, 2))
    t = np.arange(-50, 51)
    k = np.exp(-0.5 * (t * BIN_S / 0.1) ** 2)
    k /= np.sqrt((k**2).sum())
    v = np.stack([np.convolve(noise[:, i], k, mode="same") for i in range(2)], axis=1)
    return (scale * v[100:100 + n]).astype(np.float32)


def make_session(session_id: str, sites=(("M1", "M1"), ("PMd", "PMd")), units_per_site=16,
                 pool_per_site=24, n_trials=24, trial_len=80, gap=10, seed=0,
                 dataset="synthetic", xyz=False) -> SessionData:
    """A session with ``n_trials`` trials of ``trial_len`` bins separated by ``gap`` bins.

    ``sites``: (site name, area) pairs. Trials cycle through 6 train, 1 valid, 1 test.
    """
    meta = parse_session_id(session_id)
    rng = np.random.default_rng(seed)
    # the subject's neuron pool is fixed by the subject name, not by the session seed
    pool_rng = np.random.default_rng(sum(map(ord, meta["subject"])) * 7919)
    n_time = n_trials * (trial_len + gap) + gap
    vel = smooth_velocity(rng, n_time)
    counts, unit_site, unit_area, unit_xyz = [], [], [], []
    for j, (site, area) in enumerate(sites):
        pref = pool_rng.uniform(0, 2 * np.pi, pool_per_site)
        base = pool_rng.uniform(np.log(5.0), np.log(25.0), pool_per_site)  # Hz
        gain = pool_rng.uniform(0.05, 0.1, pool_per_site)  # per cm/s
        pick = np.sort(rng.choice(pool_per_site, units_per_site, replace=False))
        drive = vel[:, :1] * np.cos(pref[pick]) + vel[:, 1:] * np.sin(pref[pick])
        rate = np.exp(base[pick] + gain[pick] * drive) * BIN_S
        counts.append(rng.poisson(np.minimum(rate, 10.0)))
        unit_site += [site] * units_per_site
        unit_area += [area] * units_per_site
        pos = [1000.0 * j, 500.0 * j, 1500.0] if xyz else [np.nan] * 3
        unit_xyz += [pos] * units_per_site
    time = np.arange(n_time) * BIN_S
    starts = gap + np.arange(n_trials) * (trial_len + gap)
    trial_split = np.array([SPLIT_CYCLE[i % len(SPLIT_CYCLE)] for i in range(n_trials)])
    split = np.full(n_time, SPLIT_CODES["none"], np.int8)
    for s, name in zip(starts, trial_split, strict=True):
        split[s:s + trial_len] = SPLIT_CODES[name]
    n_unit = len(unit_site)
    spike_counts = np.concatenate(counts, axis=1).astype(np.uint8)
    # raw spikes consistent with the counts (uniform within their bin), for store writers
    t_idx, u_idx = np.nonzero(spike_counts)
    reps = spike_counts[t_idx, u_idx].astype(np.int64)
    spike_t = np.repeat(t_idx, reps) * BIN_S + rng.uniform(0, BIN_S, reps.sum())
    spike_u = np.repeat(u_idx, reps).astype(np.int32)
    order = np.argsort(spike_t, kind="stable")
    return SessionData(
        session=session_id, subject=meta["subject"], task=meta["task"],
        recording_date=meta["date"], dataset=dataset, bin_size_s=BIN_S, time=time,
        spike_counts=spike_counts, velocity=vel,
        split=split, eval_mask=split == SPLIT_CODES["test"],
        unit_id=np.array([f"u{i}" for i in range(n_unit)]),
        unit_area=np.array(unit_area), unit_site=np.array(unit_site),
        unit_xyz=np.array(unit_xyz, float),
        trial_start=time[starts], trial_stop=time[starts] + trial_len * BIN_S,
        trial_split=trial_split, spike_times=spike_t[order], spike_unit=spike_u[order],
        # center-out-like conditions: one of 8 targets per trial (a generator of its own,
        # so the other arrays do not depend on it)
        trial_condition=np.random.default_rng(seed + 99).integers(0, 8, (n_trials, 1))
        .astype(np.int16),
        attrs={"dandiset_id": "000000", "dandiset_version": "draft"},
    )


#: A small multi-subject, multi-task, multi-site collection (scenario tests).
SESSION_IDS = (
    "sub-C_ses-CO-20131003", "sub-C_ses-CO-20140218", "sub-C_ses-RT-20140304",
    "sub-C_ses-CO-20161013", "sub-C_ses-CO-20161021",
    "sub-T_ses-CO-20130819", "sub-T_ses-RT-20130820",
    "sub-M_ses-CO-20140210", "sub-M_ses-RT-20140211", "sub-M_ses-CO-20140305",
)


def make_collection(**kw) -> dict[str, SessionData]:
    """{session id: SessionData} for :data:`SESSION_IDS` (T has only a PMd site)."""
    out = {}
    for i, sid in enumerate(SESSION_IDS):
        sites = (("PMd", "PMd"),) if sid.startswith("sub-T") else (("M1", "M1"), ("PMd", "PMd"))
        out[sid] = make_session(sid, sites=sites, seed=100 + i, **kw)
    return out

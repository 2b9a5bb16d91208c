"""Synthetic sessions for the evaluation and baseline tests.

``synthetic_session`` builds a :class:`rpnt.data.session.SessionData` directly (no store,
no simulator): a smooth 2-D velocity per trial drives Poisson counts through a log-linear
tuning to the velocity ``lag`` bins earlier, so a causal decoder with enough lags can
recover it. Raw spike times are drawn uniformly inside each bin, so spike-token models
(POYO) see the same data as binned ones.
"""

from __future__ import annotations

import numpy as np

from rpnt.data.session import SPLIT_CODES, SessionData


def _smooth_velocity(rng: np.random.Generator, n: int, n_axis: int, width: int) -> np.ndarray:
    """(n, n_axis) smooth random velocity (white noise convolved with a Hann window)."""
    noise = rng.normal(size=(n + 2 * width, n_axis))
    kern = np.hanning(2 * width + 1)
    kern /= np.sqrt((kern**2).sum())
    out = np.stack([np.convolve(noise[:, a], kern, mode="same") for a in range(n_axis)], 1)
    return out[width : width + n]


def synthetic_session(
    seed: int = 0,
    n_trial: int = 40,
    trial_bins: int = 50,
    gap_bins: int = 10,
    n_unit: int = 30,
    lag: int = 2,
    bin_size_s: float = 0.02,
    base_rate_hz: float = 20.0,
    gain: float = 0.6,
    velocity_scale: float = 10.0,
    splits: tuple[int, int, int] | None = None,
    with_spikes: bool = True,
) -> SessionData:
    """A session of ``n_trial`` trials of ``trial_bins`` bins separated by ``gap_bins``.

    Shapes: counts (n_time, n_unit) with n_time = n_trial * (trial_bins + gap_bins) +
    gap_bins; velocity (n_time, 2) in cm/s (finite everywhere). Trials are split
    train/valid/test by ``splits`` (counts, default 70/15/15 %), the bin-level ``split``
    follows the trials (gaps are "none"), and ``eval_mask`` holds the trial bins after the
    first fifth of each trial (a stand-in for "go cue to trial end").
    """
    rng = np.random.default_rng(seed)
    n_time = n_trial * (trial_bins + gap_bins) + gap_bins
    time = np.arange(n_time) * bin_size_s
    vel_norm = _smooth_velocity(rng, n_time, 2, width=6)
    vel_norm /= vel_norm.std(0, keepdims=True)
    velocity = (velocity_scale * vel_norm).astype(np.float32)

    # log-rate = log(base * dt) + gain * W @ v(t - lag): a causal, lagged tuning.
    w = rng.normal(size=(2, n_unit))
    w /= np.linalg.norm(w, axis=0, keepdims=True)
    lagged = np.concatenate([np.zeros((lag, 2)), vel_norm[: n_time - lag]], 0)
    log_rate = np.log(base_rate_hz * bin_size_s) + gain * lagged @ w
    counts = rng.poisson(np.exp(log_rate)).astype(np.uint16)

    if splits is None:
        n_train = round(0.7 * n_trial)
        n_valid = round(0.15 * n_trial)
        splits = (n_train, n_valid, n_trial - n_train - n_valid)
    labels = np.array(["train"] * splits[0] + ["valid"] * splits[1] + ["test"] * splits[2])
    labels = labels[rng.permutation(n_trial)]
    starts_bin = gap_bins + np.arange(n_trial) * (trial_bins + gap_bins)
    trial_start = time[starts_bin]
    trial_stop = time[starts_bin + trial_bins]  # exact bin edges: no float round-off

    split = np.full(n_time, SPLIT_CODES["none"], dtype=np.int8)
    eval_mask = np.zeros(n_time, dtype=bool)
    skip = trial_bins // 5
    for b, lab in zip(starts_bin, labels, strict=True):
        split[b : b + trial_bins] = SPLIT_CODES[lab]
        eval_mask[b + skip : b + trial_bins] = True

    spike_times = spike_unit = None
    if with_spikes:
        t_idx, u_idx = np.nonzero(counts)
        reps = counts[t_idx, u_idx].astype(np.int64)
        t_rep = np.repeat(t_idx, reps)
        spike_unit = np.repeat(u_idx, reps).astype(np.int32)
        spike_times = time[t_rep] + rng.uniform(0, bin_size_s, size=t_rep.size)
        order = np.argsort(spike_times, kind="stable")
        spike_times, spike_unit = spike_times[order], spike_unit[order]

    areas = np.array(["M1" if i % 2 == 0 else "PMd" for i in range(n_unit)])
    return SessionData(
        session=f"sub-X_ses-CO-201601{seed % 28 + 1:02d}",
        subject="X",
        task="center_out",
        recording_date=f"2016-01-{seed % 28 + 1:02d}",
        dataset="synthetic",
        bin_size_s=bin_size_s,
        time=time,
        spike_counts=counts,
        velocity=velocity,
        split=split,
        eval_mask=eval_mask,
        unit_id=np.array([f"u{i}" for i in range(n_unit)]),
        unit_area=areas,
        unit_site=np.array([f"array-{a}" for a in areas]),
        unit_xyz=np.full((n_unit, 3), np.nan),
        trial_start=trial_start,
        trial_stop=trial_stop,
        trial_split=labels,
        spike_times=spike_times,
        spike_unit=spike_unit,
        attrs={"dandiset_id": "000000", "dandiset_version": "draft"},
    )


def write_session_store(session: SessionData, path) -> str:
    """Write ``session`` as a schema-v1 Zarr store with :func:`rpnt.store.write_store`."""
    import xarray as xr

    from rpnt.store import SPLIT_ATTRS, write_store

    n_trial = session.trial_start.size
    ds = xr.Dataset(
        {
            "spike_counts": (("time", "unit"), session.spike_counts),
            "velocity": (("time", "axis"), session.velocity),
            "split": (("time",), session.split, SPLIT_ATTRS),
            "eval_mask": (("time",), session.eval_mask),
            "trial_start": (("trial",), session.trial_start),
            "trial_stop": (("trial",), session.trial_stop),
            "trial_go_cue": (("trial",), session.trial_start + 0.2),
            "trial_result": (("trial",), np.array(["R"] * n_trial)),
            "trial_valid": (("trial",), np.ones(n_trial, bool)),
            "trial_split": (("trial",), session.trial_split.astype(str)),
            "spike_times": (("spike",), session.spike_times),
            "spike_unit": (("spike",), session.spike_unit),
        },
        coords={
            "time": session.time, "axis": ["x", "y"],
            "unit_id": ("unit", session.unit_id), "unit_area": ("unit", session.unit_area),
            "unit_site": ("unit", session.unit_site),
            "unit_x": ("unit", session.unit_xyz[:, 0]), "unit_y": ("unit", session.unit_xyz[:, 1]),
            "unit_z": ("unit", session.unit_xyz[:, 2]),
        },
        attrs={
            "schema_version": 1, "dataset": session.dataset, "session": session.session,
            "subject": session.subject, "task": session.task,
            "recording_date": session.recording_date, "bin_size_s": session.bin_size_s,
            "source_path": "synthetic", "source_sha256": "0" * 64,
            "dandiset_id": "000000", "dandiset_version": "draft", "adapter": "synthetic",
            "rpnt_version": "test", "git_commit": "test", "split_seed": 0,
            "split_fractions": [0.7, 0.15, 0.15], "split_padding_s": 0.0,
        },
    )
    write_store(ds, path)
    return str(path)

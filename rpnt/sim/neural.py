"""Simulated motor-cortex populations: latent dynamics, tuning, drift and spiking.

Per subject there is a fixed *population* of neurons near each recording site. A unit's
log firing rate at fine-grid sample t is

    log r_j(t) = b_j(date, task) + g_j(date) * k_j . kin(t + lead_j)
                 + C_j . x(t) + D_j . eta(t) + eps_j(trial(t))

with ``kin`` = (vx, vy, speed, px, py) scaled to ~unit range, ``lead_j`` the time by which
the unit leads movement (M1 ~100 ms, PMd ~150 ms), ``x`` the task-driven latent state
(2 preparatory dims that relax toward the upcoming reach during the delay, 4 rotational
dims in two planes kicked at movement initiation with a phase set by the preparatory
state, 1 condition-invariant dim), ``eta`` 3 shared latent dims not tied to behaviour
(slow Ornstein-Uhlenbeck "internal state"), and ``eps`` a per-trial gain (over-dispersion).
Preferred directions, gains and baselines drift with the recording date; each session
records a random subset of the population; RT sessions shift baselines and gains.
Spikes are Poisson on the grid, placed uniformly inside their sample, then thinned to a
1.5 ms refractory period.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from rpnt.sim.kinematics import DT, Behaviour
from rpnt.sim.presets import SessionSpec, SubjectSpec

LATENT_NAMES = ("prep_x", "prep_y", "rot1_re", "rot1_im", "rot2_re", "rot2_im", "cis",
                "internal1", "internal2", "internal3")
KIN_NAMES = ("vx", "vy", "speed", "px", "py")
VEL_SCALE = 20.0  #: cm/s -> unit range
POS_SCALE = 8.0  #: cm -> unit range
MAX_RATE = 200.0  #: Hz, soft saturation
REFRACTORY_S = 0.0015
EPOCH = np.datetime64("2013-01-01")


@dataclass
class Population:
    """A subject's neurons (``p`` of them over all sites); (p,) arrays unless noted."""

    site: np.ndarray  #: site index into SubjectSpec.sites
    channel: np.ndarray  #: channel on its site, 0..n_channels-1
    base: np.ndarray  #: log baseline rate (Hz) at the epoch
    pd: np.ndarray  #: preferred direction at the epoch (rad)
    kin: np.ndarray  #: (p, 5) tuning weights on KIN_NAMES (vel weights: magnitude only)
    lead_steps: np.ndarray  #: lead of the unit over the movement, in DT steps
    latent: np.ndarray  #: (p, 7) loadings on the task latents
    internal: np.ndarray  #: (p, 3) loadings on the internal-state latents
    trial_sd: np.ndarray  #: sd of the per-trial log gain
    pd_drift: np.ndarray  #: rad / year
    gain_drift: np.ndarray  #: log gain / year
    base_drift: np.ndarray  #: log rate / year
    rt_shift: np.ndarray  #: log-rate shift in random-target sessions
    rt_gain: np.ndarray  #: log gain change in random-target sessions
    # subject-level dynamics
    rot_omega: np.ndarray  #: (2,) rad/s of the two rotational planes
    rot_tau: float  #: s, damping of rotations
    prep_tau: float
    prep_to_rot: np.ndarray  #: (4, 2) maps the preparatory state to the rotation kick

    @property
    def size(self) -> int:
        return int(self.site.shape[0])


def make_population(rng: np.random.Generator, subject: SubjectSpec) -> Population:
    """Draw a subject's population: areas differ in what they encode (see module doc)."""
    n_site = len(subject.sites)
    p = subject.pop_per_site * n_site
    site = np.repeat(np.arange(n_site), subject.pop_per_site)
    is_m1 = np.array([subject.sites[s].area == "M1" for s in site])
    n_ch = np.array([subject.sites[s].n_channels for s in site])
    channel = (rng.random(p) * n_ch).astype(np.int64)
    # log-normal baselines (median ~7 Hz, most within 1-60 Hz) and ~8% near-silent units
    base = rng.normal(np.log(7.0), 0.85, p)
    silent = rng.random(p) < 0.08
    base[silent] = rng.uniform(np.log(0.2), np.log(1.0), silent.sum())
    kin = np.empty((p, 5))
    kin[:, 0] = np.where(is_m1, np.abs(rng.normal(0.6, 0.25, p)), np.abs(rng.normal(0.38, 0.15, p)))
    kin[:, 1] = 0.0  # direction enters through pd; column kept for a fixed layout
    kin[:, 2] = np.where(is_m1, rng.normal(0.25, 0.25, p), rng.normal(0.1, 0.2, p))
    kin[:, 3:5] = rng.normal(0, np.where(is_m1, 0.2, 0.12)[:, None], (p, 2))
    lead_ms = np.where(is_m1, rng.normal(100, 30, p), rng.normal(150, 50, p))
    lead_steps = np.clip(np.round(lead_ms / 1000 / DT), 0, 60).astype(np.int64)
    latent = np.empty((p, 7))
    latent[:, 0:2] = rng.normal(0, np.where(is_m1, 0.12, 0.45)[:, None], (p, 2))
    latent[:, 2:6] = rng.normal(0, np.where(is_m1, 0.3, 0.18)[:, None], (p, 4))
    latent[:, 6] = np.where(is_m1, rng.normal(0.35, 0.25, p), rng.normal(0.2, 0.25, p))
    return Population(
        site=site, channel=channel, base=base, pd=rng.uniform(0, 2 * np.pi, p), kin=kin,
        lead_steps=lead_steps, latent=latent,
        internal=rng.normal(0, 0.22, (p, 3)),
        trial_sd=rng.uniform(0.1, 0.3, p),
        pd_drift=rng.normal(0, 0.25, p),
        gain_drift=rng.normal(0, 0.12, p),
        base_drift=rng.normal(0, 0.15, p),
        rt_shift=rng.normal(0, 0.2, p),
        rt_gain=rng.normal(0, 0.15, p),
        rot_omega=2 * np.pi * np.array([rng.uniform(1.5, 2.5), rng.uniform(3.0, 4.0)]),
        rot_tau=float(rng.uniform(0.18, 0.3)),
        prep_tau=float(rng.uniform(0.12, 0.2)),
        prep_to_rot=rng.normal(0, 1.0, (4, 2)),
    )


def choose_units(rng: np.random.Generator, pop: Population, subject: SubjectSpec
                 ) -> np.ndarray:
    """Population indices recorded in one session, sorted by (site, channel)."""
    chosen = []
    lo, hi = subject.units_per_site
    for s in range(len(subject.sites)):
        members = np.flatnonzero(pop.site == s)
        k = int(rng.integers(lo, hi + 1))
        chosen.append(rng.choice(members, size=min(k, members.size), replace=False))
    idx = np.concatenate(chosen)
    return idx[np.lexsort((pop.channel[idx], pop.site[idx]))]


def _lowpass(x: np.ndarray, tau: float) -> np.ndarray:
    """First-order low-pass along axis 0 (unit DC gain)."""
    a = np.exp(-DT / tau)
    return lfilter([1 - a], [1.0, -a], x, axis=0)


def latent_states(rng: np.random.Generator, pop: Population, beh: Behaviour) -> np.ndarray:
    """(n, 10) latent states on the fine grid, columns LATENT_NAMES."""
    n = beh.time.shape[0]
    mv = beh.moves
    goal = np.zeros((n, 2))
    # Preparation: the upcoming displacement is held from its cue until movement onset.
    for cue, on, d in zip(mv.cue, mv.onset, mv.disp, strict=True):
        i0, i1 = int(cue / DT), min(int((on + 0.05) / DT), n)
        goal[i0:i1] = d / POS_SCALE
    prep = _lowpass(goal, pop.prep_tau)
    # Rotations: kicked ~150 ms before onset (cortex leads the hand), phase from prep.
    kick_idx = np.clip(((mv.onset - 0.15) / DT).astype(np.int64), 0, n - 1)
    kicks = np.zeros((n, 4))
    np.add.at(kicks, kick_idx, prep[kick_idx] @ pop.prep_to_rot.T)
    rot = np.empty((n, 4))
    for k in range(2):
        pole = np.exp((-1 / pop.rot_tau + 1j * pop.rot_omega[k]) * DT)
        z = lfilter([1.0], [1.0, -pole], kicks[:, 2 * k] + 1j * kicks[:, 2 * k + 1])
        rot[:, 2 * k], rot[:, 2 * k + 1] = z.real, z.imag
    # Condition-invariant signal: a gamma-shaped bump after each initiation, peak ~1.
    cis_in = np.zeros(n)
    np.add.at(cis_in, kick_idx, 1.0)
    tau_c = 0.08
    cis = _lowpass(_lowpass(cis_in, tau_c), tau_c) * (tau_c / DT) * np.e
    # Internal state: OU processes with time constants 0.3, 1 and 3 s, unit variance.
    internal = np.empty((n, 3))
    for k, tau in enumerate((0.3, 1.0, 3.0)):
        a = np.exp(-DT / tau)
        internal[:, k] = lfilter([np.sqrt(1 - a**2)], [1.0, -a], rng.normal(0, 1, n))
    return np.column_stack([prep, rot, cis, internal])


def kinematic_features(beh: Behaviour) -> np.ndarray:
    """(n, 5) scaled kinematics, columns KIN_NAMES."""
    speed = np.hypot(beh.vel[:, 0], beh.vel[:, 1])
    return np.column_stack([beh.vel / VEL_SCALE, speed / VEL_SCALE, beh.pos / POS_SCALE])


def session_rates(rng: np.random.Generator, pop: Population, units: np.ndarray,
                  spec: SessionSpec, beh: Behaviour, latents: np.ndarray) -> np.ndarray:
    """(n, u) float32 true firing rates (Hz) of the recorded ``units`` on the fine grid."""
    years = float((np.datetime64(spec.iso_date) - EPOCH) / np.timedelta64(1, "D")) / 365.25
    rt = spec.task == "RT"
    # Date drift (linear in years) plus a small session-specific wobble.
    pd = pop.pd[units] + pop.pd_drift[units] * years + rng.normal(0, 0.05, units.size)
    log_gain = pop.gain_drift[units] * years + rt * pop.rt_gain[units]
    base = (pop.base[units] + pop.base_drift[units] * years + rt * pop.rt_shift[units]
            + rng.normal(0, 0.1, units.size) + rng.normal(0, 0.1))  # unit and array-wide
    w = pop.kin[units].copy()
    w[:, 0], w[:, 1] = w[:, 0] * np.cos(pd), w[:, 0] * np.sin(pd)
    w *= np.exp(log_gain)[:, None]
    kin = kinematic_features(beh).astype(np.float32)
    w = w.astype(np.float32)
    # Unit j sees the kinematics ``lead_j`` samples ahead: compute the unshifted drive with
    # one matmul, then read row t + lead_j of column j through a sliding-window view
    # (no (n, u) index array; rows past the end repeat the last sample).
    leads = pop.lead_steps[units]
    span = int(leads.max()) + 1
    d0 = kin @ w.T  # (n, u)
    d0 = np.concatenate([d0, np.repeat(d0[-1:], span - 1, axis=0)])
    win = np.lib.stride_tricks.sliding_window_view(d0, span, axis=0)  # (n, u, span)
    drive = np.ascontiguousarray(win[:, np.arange(units.size), leads])
    lat32 = latents.astype(np.float32)
    drive += lat32[:, :7] @ pop.latent[units].T.astype(np.float32)
    drive += lat32[:, 7:] @ pop.internal[units].T.astype(np.float32)
    # Over-dispersion: a log-normal gain per unit and trial (trial = time since its start).
    starts = beh.trials["start_time"]
    trial_of = np.searchsorted(starts, beh.time, side="right")  # 0 = before the first
    eps = rng.normal(0, 1, (starts.size + 1, units.size)) * pop.trial_sd[units] + base
    drive += eps[trial_of].astype(np.float32)
    np.exp(drive, out=drive)
    drive /= 1 + drive / np.float32(MAX_RATE)
    return drive


def spikes_from_rates(rng: np.random.Generator, rates: np.ndarray, t0: float = 0.0
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Sample spikes from (n, u) rates on the DT grid starting at ``t0``.

    Returns (spike_times (s,), spike_unit (s,) int32), sorted by unit then time. Poisson
    counts per sample, times uniform within the sample, then spikes closer than
    REFRACTORY_S to the previous kept spike of the same unit are dropped (one vectorised
    pass: drop every spike whose predecessor is too close).
    """
    counts = rng.poisson(rates * DT).astype(np.int32)
    u_idx, t_idx = np.nonzero(counts.T)  # unit-major order
    c = counts.T[u_idx, t_idx]
    unit = np.repeat(u_idx, c).astype(np.int32)
    times = t0 + (np.repeat(t_idx, c) + rng.random(int(c.sum()))) * DT
    order = np.lexsort((times, unit))
    unit, times = unit[order], times[order]
    too_close = np.zeros(times.size, dtype=bool)
    too_close[1:] = (unit[1:] == unit[:-1]) & (np.diff(times) < REFRACTORY_S)
    return times[~too_close], unit[~too_close]

"""Simulated reaching behaviour: center-out and random-target trials on a fine time grid.

Cursor movement is a superposition of minimum-jerk submovements (Flash & Hogan; Flash &
Henis for overlapping submovements): each submovement has an onset, a duration and a
displacement, plus a curvature bump perpendicular to its path. Overlapping submovements
give the continuous movement of the random-target task; center-out trials get an
instructed delay, a go cue, a reaction time, a reach, a target hold and a return.

All times are seconds from the session start; positions in cm, velocities in cm/s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from rpnt.sim.presets import SessionSpec

DT = 0.005  #: fine grid step (s) of behaviour, latents and true rates
CO_RADIUS = 8.0  #: cm, center-out target distance
CO_TARGET_SIZE = 2.0  #: cm, side of a center-out target square
RT_HALF_WIDTH = 8.0  #: cm, random targets lie in [-8, 8]^2
RT_GRID = 9  #: random targets sit on a 9 x 9 grid (target_id = row * 9 + col)


@dataclass(frozen=True)
class MotorStyle:
    """Subject-specific movement statistics (subjects differ in how they reach)."""

    duration_s: float  #: mean center-out reach duration
    rt_s: float  #: mean reaction time
    curvature_cm: float  #: sd of the perpendicular bump
    endpoint_sd_cm: float
    delay_s: tuple[float, float]  #: instructed delay range


def motor_style(rng: np.random.Generator) -> MotorStyle:
    return MotorStyle(
        duration_s=float(rng.uniform(0.38, 0.52)),
        rt_s=float(rng.uniform(0.22, 0.32)),
        curvature_cm=float(rng.uniform(0.3, 0.8)),
        endpoint_sd_cm=float(rng.uniform(0.25, 0.45)),
        delay_s=(0.5, float(rng.uniform(0.9, 1.2))),
    )


@dataclass
class Submovements:
    """Planned movements: (k,) arrays, one entry per submovement."""

    cue: np.ndarray  #: time the movement goal became known (preparation starts)
    onset: np.ndarray  #: movement onset
    duration: np.ndarray
    disp: np.ndarray  #: (k, 2) displacement, cm
    curve: np.ndarray  #: (k,) perpendicular bump amplitude, cm


@dataclass
class Behaviour:
    """Cursor kinematics on the fine grid (``n`` samples of :data:`DT`) and the trial table."""

    time: np.ndarray  #: (n,) float64 sample times
    pos: np.ndarray  #: (n, 2) cm
    vel: np.ndarray  #: (n, 2) cm/s
    acc: np.ndarray  #: (n, 2) cm/s^2
    moves: Submovements
    trials: dict[str, np.ndarray]  #: NWB trial columns (task-specific, see module doc)
    glitches: list[tuple[float, float]]  #: recording-artefact intervals (s)


class _Planner:
    """Accumulates submovements and trial rows while walking through a session."""

    def __init__(self, rng: np.random.Generator, style: MotorStyle):
        self.rng, self.style = rng, style
        self.moves: list[tuple[float, float, float, float, float, float]] = []
        self.planned = np.zeros(2)  # endpoint of all movements planned so far

    def reach(self, cue: float, onset: float, goal: np.ndarray, duration: float,
              scatter: float | None = None) -> float:
        """Plan a reach to ``goal`` (+ endpoint scatter); return its end time."""
        sd = self.style.endpoint_sd_cm if scatter is None else scatter
        # stay on the screen: |x|, |y| > 10 cm marks recording artefacts in 000688
        end = np.clip(goal + self.rng.normal(0, sd, 2), -9.5, 9.5)
        disp = end - self.planned
        curve = self.rng.normal(0, self.style.curvature_cm) * min(1.0, np.hypot(*disp) / 8)
        self.moves.append((cue, onset, duration, disp[0], disp[1], curve))
        self.planned = end
        return onset + duration

    def correction(self, t: float, goal: np.ndarray) -> float:
        """A small corrective submovement toward the exact goal (realistic endpoints)."""
        dur = float(self.rng.uniform(0.15, 0.25))
        return self.reach(t - 0.1, t, goal, dur, scatter=0.1)

    def submovements(self) -> Submovements:
        m = np.asarray(self.moves, dtype=np.float64).reshape(-1, 6)
        return Submovements(m[:, 0], m[:, 1], m[:, 2], m[:, 3:5], m[:, 5])


def _lognormal(rng: np.random.Generator, mean: float, cv: float) -> float:
    return float(mean * np.exp(rng.normal(0, cv) - cv**2 / 2))


def plan_center_out(rng: np.random.Generator, style: MotorStyle, n_trials: int
                    ) -> tuple[_Planner, dict[str, np.ndarray], float]:
    """Center-out: hold, target on, delay, go cue, RT, reach, hold, reward, return."""
    pl = _Planner(rng, style)
    results = rng.choice(np.array(list("RAFI")), size=n_trials, p=[0.82, 0.07, 0.06, 0.05])
    cols = {k: np.full(n_trials, np.nan) for k in
            ("start_time", "stop_time", "target_on_time", "go_cue_time", "target_dir",
             "target_id")}
    corners = np.full((n_trials, 4), np.nan)
    t = 1.0
    for i, res in enumerate(results):
        tid = int(rng.integers(0, 8))
        ang = tid * np.pi / 4
        goal = CO_RADIUS * np.array([np.cos(ang), np.sin(ang)])
        start = t
        t_on = start + rng.uniform(0.3, 0.5)
        go = t_on + rng.uniform(*style.delay_s)
        rt = _lognormal(rng, style.rt_s, 0.2)
        dur = _lognormal(rng, style.duration_s, 0.15)
        if rng.random() < 0.03:  # occasional outlier: a slow, hesitant trial
            rt, dur = rt * 2.5, dur * 2.0
        home = False  # did the cursor leave the center?
        if res == "R":
            end = pl.reach(t_on, go + rt, goal, dur)
            if rng.random() < 0.3:
                end = pl.correction(end - 0.05, goal)
            stop = end + rng.uniform(0.45, 0.6)  # target hold, then reward
            home = True
        elif res == "A":  # moved before the go cue (or before the target appeared)
            if rng.random() < 0.3:
                t_on = np.nan
                stop = start + rng.uniform(0.2, 0.4)
                wander = rng.normal(0, 1.5, 2)
                end = pl.reach(start, start + 0.1, wander, 0.35)
            else:
                onset = t_on + rng.uniform(0.15, 0.4)
                end = pl.reach(t_on, onset, goal, dur)
                stop = onset + rng.uniform(0.15, 0.3)
            go = np.nan
            home = True
        elif res == "F":  # reached, but to the wrong place or without holding
            miss = np.deg2rad(rng.choice([-1, 1]) * rng.uniform(25, 60))
            off = CO_RADIUS * rng.uniform(0.6, 1.1)
            wrong = off * np.array([np.cos(ang + miss), np.sin(ang + miss)])
            end = pl.reach(t_on, go + rt, wrong, dur)
            stop = end + rng.uniform(0.1, 0.3)
            home = True
        else:  # "I": no movement in the allowed time
            stop = go + 1.5
            end = stop
        cols["start_time"][i], cols["stop_time"][i] = start, stop
        cols["target_on_time"][i], cols["go_cue_time"][i] = t_on, go
        if np.isfinite(t_on):
            cols["target_dir"][i], cols["target_id"][i] = ang, tid
            h = CO_TARGET_SIZE / 2
            corners[i] = [goal[0] - h, goal[1] + h, goal[0] + h, goal[1] - h]
        t = max(stop, end)
        if home:  # self-paced return to the center during the inter-trial interval
            onset = t + rng.uniform(0.1, 0.3)
            t = pl.reach(onset - 0.15, onset, np.zeros(2), _lognormal(rng, 0.55, 0.15),
                         scatter=0.15)
        t += rng.uniform(0.1, 0.3)
    cols["target_corners"] = corners
    cols["result"] = results
    return pl, cols, t


def plan_random_target(rng: np.random.Generator, style: MotorStyle, n_trials: int
                       ) -> tuple[_Planner, dict[str, np.ndarray], float]:
    """Random target: 4 targets per trial, each cued when the previous one is reached."""
    pl = _Planner(rng, style)
    results = rng.choice(np.array(list("RFI")), size=n_trials, p=[0.85, 0.1, 0.05])
    n = n_trials
    cols = {k: np.full(n, np.nan) for k in ("start_time", "stop_time", "target_size")}
    go_arr = np.full((n, 4), np.nan)
    tid_arr = np.full((n, 4), np.nan)
    dir_arr = np.full((n, 4), np.nan)
    n_att = np.zeros(n, dtype=np.int64)
    grid = np.linspace(-RT_HALF_WIDTH, RT_HALF_WIDTH, RT_GRID)
    t = 1.0
    for i, res in enumerate(results):
        start = t
        attempts = 4 if res == "R" else int(rng.integers(1, 4))
        go = start + rng.uniform(0.15, 0.35)
        cur = pl.planned.copy()
        stop = go
        for k in range(attempts):
            while True:  # next target at least 3 cm away
                r, c = rng.integers(0, RT_GRID, 2)
                goal = np.array([grid[c], grid[r]])
                if np.hypot(*(goal - cur)) >= 3.0:
                    break
            dist = float(np.hypot(*(goal - cur)))
            go_arr[i, k], tid_arr[i, k] = go, r * RT_GRID + c
            dir_arr[i, k] = np.arctan2(goal[1] - cur[1], goal[0] - cur[0])
            last_failed = res != "R" and k == attempts - 1
            if last_failed and res == "I":
                stop = go + 1.0  # did not move in time
                break
            # Shorter RTs than center-out: the monkey anticipates the next target.
            onset = go + _lognormal(rng, 0.75 * style.rt_s, 0.2)
            dur = _lognormal(rng, 0.22 + 0.028 * dist, 0.15)
            if last_failed:  # res == "F": overshoot, no hold
                goal = goal + rng.normal(0, 2.5, 2)
            end = pl.reach(go, onset, goal, dur)
            cur = goal
            hold = rng.uniform(0.1, 0.25)
            # The next cue comes when the cursor has entered the target, before it stops:
            # consecutive submovements overlap, which makes the movement continuous.
            go = end - 0.35 * dur + hold
            stop = end + (hold if not last_failed else 0.1)
        cols["start_time"][i], cols["stop_time"][i] = start, stop
        cols["target_size"][i] = 2.0
        n_att[i] = attempts
        t = stop + rng.uniform(0.2, 0.5)
    cols.update(go_cue_time_array=go_arr, target_id=tid_arr, target_dir=dir_arr,
                num_attempted=n_att, num_targets=np.full(n, 4, dtype=np.int64),
                result=results)
    return pl, cols, t


def _render(moves: Submovements, n: int, rng: np.random.Generator) -> np.ndarray:
    """Velocity (n, 2) cm/s: the sum of all minimum-jerk submovement profiles."""
    vel = np.zeros((n, 2))
    for on, dur, d, c in zip(moves.onset, moves.duration, moves.disp, moves.curve,
                             strict=True):
        i0 = round(on / DT)
        m = max(round(dur / DT), 2)
        s = (np.arange(m) + 0.5) / m
        along = 30 * s**2 * (1 - s) ** 2 / dur  # min-jerk speed profile, integrates to 1
        perp = 192 * s**2 * (1 - s) ** 2 * (1 - 2 * s) / dur  # d/dt of 64 s^3 (1-s)^3
        norm = np.hypot(*d)
        u = d / norm if norm > 0 else np.zeros(2)
        w = np.array([-u[1], u[0]])
        seg = along[:, None] * d[None, :] + c * perp[:, None] * w[None, :]
        i1 = min(i0 + m, n)
        vel[i0:i1] += seg[: i1 - i0]
    # Postural jitter: a slow Ornstein-Uhlenbeck wobble of the hand (~0.1 cm).
    tau, sd = 0.15, 0.1
    a = np.exp(-DT / tau)
    jitter = lfilter([1.0], [1.0, -a], rng.normal(0, sd * np.sqrt(1 - a**2), (n, 2)), axis=0)
    vel += np.gradient(jitter, DT, axis=0)
    return vel


def simulate_behaviour(rng: np.random.Generator, style: MotorStyle, spec: SessionSpec
                       ) -> Behaviour:
    """Plan the session's trials and render cursor kinematics on the :data:`DT` grid."""
    plan = plan_center_out if spec.task == "CO" else plan_random_target
    planner, trials, t_end = plan(rng, style, spec.n_trials)
    moves = planner.submovements()
    n = int(np.ceil((t_end + 1.0) / DT))
    time = np.arange(n) * DT
    vel = _render(moves, n, rng)
    pos = np.cumsum(vel, axis=0) * DT
    acc = np.gradient(vel, DT, axis=0)
    # Recording artefacts (cursor jumps) the ingest must flag; ~1 per session.
    glitches = []
    for _ in range(int(rng.poisson(1.0))):
        t0 = float(rng.uniform(1.0, t_end - 1.0))
        glitches.append((t0, t0 + float(rng.uniform(0.03, 0.15))))
    return Behaviour(time, pos, vel, acc, moves, trials, glitches)

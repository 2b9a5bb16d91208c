"""One simulated session: a subject's population and motor style, trials, rates, spikes.

Randomness: a subject's population and motor style depend on (seed, subject) only, so all
sessions of a subject share neurons; everything session-specific (trials, recorded units,
spikes) depends on (seed, session id). Same seed -> identical arrays.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from rpnt.sim import kinematics, neural
from rpnt.sim.kinematics import DT, Behaviour, MotorStyle
from rpnt.sim.presets import Preset, SessionSpec, SubjectSpec


def _hash(text: str) -> int:
    return zlib.crc32(text.encode())


@dataclass
class SimSession:
    """One simulated session; fine-grid arrays have ``n`` samples of :data:`DT`."""

    preset: str
    seed: int
    spec: SessionSpec
    subject: SubjectSpec
    behaviour: Behaviour
    units: np.ndarray  #: (u,) population index of each recorded unit
    unit_site: np.ndarray  #: (u,) site index into subject.sites
    unit_channel: np.ndarray  #: (u,) channel on that site
    rates: np.ndarray  #: (n, u) float32 true rates, Hz
    latents: np.ndarray  #: (n, 10) float32, neural.LATENT_NAMES
    spike_times: np.ndarray  #: (s,) float64, sorted by unit then time
    spike_unit: np.ndarray  #: (s,) int32

    @property
    def n_units(self) -> int:
        return int(self.units.size)

    @property
    def session_hash(self) -> int:
        return _hash(self.spec.session_id)


@dataclass
class SubjectModel:
    population: neural.Population
    style: MotorStyle


def subject_model(seed: int, subject: SubjectSpec) -> SubjectModel:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1, _hash(subject.subject_id)]))
    return SubjectModel(neural.make_population(rng, subject), kinematics.motor_style(rng))


def simulate_session(preset: Preset, spec: SessionSpec, seed: int,
                     model: SubjectModel | None = None) -> SimSession:
    """Simulate one session of ``preset`` (pass ``model`` to reuse a subject's population)."""
    subject = preset.subjects[spec.subject]
    model = model or subject_model(seed, subject)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2, _hash(spec.session_id)]))
    beh = kinematics.simulate_behaviour(rng, model.style, spec)
    pop = model.population
    units = neural.choose_units(rng, pop, subject)
    lat = neural.latent_states(rng, pop, beh)
    rates = neural.session_rates(rng, pop, units, spec, beh, lat)
    times, unit = neural.spikes_from_rates(rng, rates, t0=float(beh.time[0]))
    # The recording ends with the last behaviour sample (100 Hz, jittered timestamps).
    keep = times < beh.time[-1] - 2 * DT
    times, unit = times[keep], unit[keep]
    return SimSession(
        preset=preset.name, seed=seed, spec=spec, subject=subject, behaviour=beh, units=units,
        unit_site=pop.site[units], unit_channel=pop.channel[units], rates=rates,
        latents=lat.astype(np.float32), spike_times=times, spike_unit=unit,
    )


def truth_arrays(sim: SimSession, model: SubjectModel) -> dict[str, np.ndarray]:
    """The ground-truth file's arrays (all plain dtypes: loadable with allow_pickle=False)."""
    pop, u, b = model.population, sim.units, sim.behaviour
    sites = sim.subject.sites
    tr = b.trials
    out = {
        "session_id": np.array(sim.spec.session_id),
        "dt": np.array(DT),
        "time": b.time,  # (n,) sample starts, s; rates are constant over [t, t + dt)
        # (n, u) Hz, unit order = NWB units table order; float16 (3 significant digits)
        # keeps the default preset's truth at ~300 MB
        "rates": sim.rates.astype(np.float16),
        "latents": sim.latents,  # (n, 10)
        "latent_names": np.array(neural.LATENT_NAMES),
        "position": b.pos, "velocity": b.vel, "acceleration": b.acc,  # (n, 2), artefact-free
        "unit_population_index": u,
        "unit_area": np.array([sites[s].area for s in sim.unit_site]),
        "unit_site": np.array([sites[s].name for s in sim.unit_site]),
        "unit_channel": sim.unit_channel,
        "unit_lead_s": pop.lead_steps[u] * DT,
        "unit_pd_epoch": pop.pd[u],
        "spike_times": sim.spike_times, "spike_unit": sim.spike_unit,
        "trial_start": tr["start_time"], "trial_stop": tr["stop_time"],
        "trial_result": tr["result"].astype("<U1"),
        "glitches": np.asarray(b.glitches, dtype=np.float64).reshape(-1, 2),
    }
    if sim.spec.task == "CO":
        out["trial_go_cue"] = tr["go_cue_time"]
        out["trial_target_id"] = tr["target_id"]
    else:
        out["trial_go_cue"] = tr["go_cue_time_array"][:, 0]
        out["trial_num_attempted"] = tr["num_attempted"]
    return out

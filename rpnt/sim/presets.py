"""Simulator presets: fixed lists of subjects and sessions.

The workflow plans its DAG from :func:`session_ids` before anything is simulated, and the
benchmark scenarios select sessions by these names, so the session lists are part of the
contract (docs/architecture.md): change them only together with ``config/``.

A session id is the NWB ``session_id`` (``sub-C_ses-CO-20131003``): subject, task code
(``CO`` center-out, ``RT`` random target) and recording date. The FALCON stand-ins
(``falcon_m2``, ``falcon_m1``, ``falcon_h1``: the layouts of DANDI 000953, 000941, 000954,
written by :mod:`rpnt.sim.falcon`) name sessions as FALCON names its files, with the file
split in the subject entity: ``sub-SimN-held-out-calib_ses-20201030``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rpnt.errors import RpntError

TASK_NAMES = {"CO": "center_out", "RT": "random_target"}


@dataclass(frozen=True)
class SiteSpec:
    """One recording site: a 96-channel Utah array, or one Neuropixels-style probe site.

    ``xyz_um`` is the site's centre (micrometres) when the electrodes carry coordinates
    (multisite preset), else None (Utah arrays in DANDI 000688 have no x/y/z).
    """

    name: str  #: electrode group is ``electrode_group_<name>``
    area: str  #: brain area written to ``location``: "M1" or "PMd"
    n_channels: int = 96
    xyz_um: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class SubjectSpec:
    """A simulated monkey: its sites and the size of its neural population per site."""

    subject_id: str
    sites: tuple[SiteSpec, ...]
    sex: str = "M"
    age: str = "P8Y"
    pop_per_site: int = 120  #: neurons near each site; a session records a subset
    units_per_site: tuple[int, int] = (40, 90)  #: observed units per site, drawn per session


@dataclass(frozen=True)
class SessionSpec:
    """One recording session of a preset."""

    subject: str
    task: str  #: "CO" or "RT"
    date: str  #: "YYYYMMDD"
    n_trials: int
    #: FALCON file split ("held-in-calib", "held-out-calib"); "" outside the FALCON presets
    split: str = ""

    @property
    def session_id(self) -> str:
        if self.split:
            return f"sub-{self.subject}-{self.split}_ses-{self.date}"
        return f"sub-{self.subject}_ses-{self.task}-{self.date}"

    @property
    def iso_date(self) -> str:
        return f"{self.date[:4]}-{self.date[4:6]}-{self.date[6:]}"

    @property
    def task_name(self) -> str:
        return TASK_NAMES[self.task]

    @property
    def relpath(self) -> str:
        """Path inside the dandiset folder, as in DANDI 000688 (FALCON: a folder per split)."""
        folder = f"sub-{self.subject}" + (f"-{self.split}" if self.split else "")
        return f"{folder}/{self.session_id}_behavior+ecephys.nwb"


@dataclass(frozen=True)
class Preset:
    """A named simulated dataset."""

    name: str
    description: str
    subjects: dict[str, SubjectSpec]
    sessions: tuple[SessionSpec, ...]
    #: spike waveforms stored per unit (first k spikes); None stores one per spike, as the
    #: real 000688 files do (large: only for the ingest benchmark).
    waveforms_per_unit: int | None = 4
    extra: dict = field(default_factory=dict)


def _utah(*areas: str) -> tuple[SiteSpec, ...]:
    return tuple(SiteSpec(name=a, area=a) for a in areas)


def _sessions(subject: str, spec: str, co: int, rt: int) -> tuple[SessionSpec, ...]:
    """``spec`` like "CO 20131003, RT 20131004" -> SessionSpecs with CO/RT trial counts."""
    out = []
    for item in spec.split(","):
        task, date = item.split()
        out.append(SessionSpec(subject, task, date, co if task == "CO" else rt))
    return tuple(out)


_TINY_SUBJECTS = {
    "C": SubjectSpec("C", _utah("M1", "PMd"), pop_per_site=40, units_per_site=(24, 32)),
    "T": SubjectSpec("T", _utah("PMd"), pop_per_site=40, units_per_site=(24, 32)),
}

_DEFAULT_SUBJECTS = {
    "C": SubjectSpec("C", _utah("M1", "PMd"), pop_per_site=120, units_per_site=(45, 85)),
    "T": SubjectSpec("T", _utah("PMd"), pop_per_site=120, units_per_site=(55, 90)),
    "M": SubjectSpec("M", _utah("M1", "PMd"), pop_per_site=120, units_per_site=(45, 85)),
}

# Neuropixels-style: three probe sites with coordinates (um), two in M1 and one in PMd.
_MULTISITE_SUBJECTS = {
    "N": SubjectSpec(
        "N",
        (
            SiteSpec("M1a", "M1", 96, (0.0, 0.0, 1500.0)),
            SiteSpec("M1b", "M1", 96, (2000.0, 1000.0, 1500.0)),
            SiteSpec("PMd", "PMd", 96, (6000.0, 3000.0, 1800.0)),
        ),
        pop_per_site=60,
        units_per_site=(30, 45),
    ),
}


def _falcon(layout: str, subject: str, task: str, held_in: str, held_out: str,
            n_trials: int, what: str) -> Preset:
    """A FALCON stand-in: one held-in calibration file per held-in day, one held-out
    calibration file per held-out day (its trials give the few-shot labels and the
    scored test trials); one monkey (or participant) with one M1 array."""
    sessions = tuple(SessionSpec(subject, task, d, n_trials, split)
                     for days, split in ((held_in, "held-in-calib"),
                                         (held_out, "held-out-calib"))
                     for d in days.split())
    return Preset(
        name=f"falcon_{layout}",
        description=f"FALCON {layout.upper()} stand-in: {what}, {len(held_in.split())} "
                    f"held-in and {len(held_out.split())} held-out days",
        subjects={subject: SubjectSpec(subject, _utah("M1"), pop_per_site=60,
                                       units_per_site=(36, 44))},
        sessions=sessions, extra={"layout": layout})


#: FALCON stand-ins: held-in days, then held-out days weeks later (the population drifts
#: with the date, so held-out days differ).
FALCON_PRESETS: dict[str, Preset] = {p.name: p for p in (
    _falcon("m2", "SimN", "CO", "20201019 20201020 20201027 20201028", "20201118 20201124",
            40, "two finger-group velocities"),
    _falcon("m1", "SimL", "CO", "20120924 20120926 20120927", "20121017 20121024", 40,
            "16 EMG-like channels (rectified, low-passed mixtures of the kinematics)"),
    _falcon("h1", "SimP", "RT", "20150105 20150112 20150117", "20150202 20150213", 30,
            "7 velocities (mixtures of the 2-D kinematics)"),
)}

PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        name="tiny",
        description="CI: two subjects, both tasks, a few short sessions (seconds to make)",
        subjects=_TINY_SUBJECTS,
        sessions=(
            *_sessions("C", "CO 20131003, RT 20131004, CO 20161013", co=36, rt=30),
            *_sessions("T", "CO 20130819, RT 20130820", co=36, rt=30),
        ),
    ),
    "default": Preset(
        name="default",
        description=(
            "the embedded benchmark: 3 subjects, both tasks, M1 and PMd, 12 sessions "
            "recorded 2013-2016"
        ),
        subjects=_DEFAULT_SUBJECTS,
        sessions=(
            *_sessions(
                "C",
                "CO 20131003, CO 20140218, CO 20150610, RT 20140304, CO 20161013, CO 20161021",
                co=140, rt=65,
            ),
            *_sessions("T", "CO 20130819, RT 20130820, CO 20130821", co=140, rt=65),
            *_sessions("M", "CO 20140210, RT 20140211, CO 20140305", co=140, rt=65),
        ),
    ),
    "multisite": Preset(
        name="multisite",
        description="Neuropixels-style: one subject, three probe sites with x/y/z, 3 sessions",
        subjects=_MULTISITE_SUBJECTS,
        sessions=_sessions("N", "CO 20160301, CO 20160302, RT 20160303", co=100, rt=50),
    ),
    **FALCON_PRESETS,
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; RpntError naming the choices otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise RpntError(
            f"unknown simulator preset {name!r}; choose one of {', '.join(PRESETS)}"
        ) from None


def session_ids(preset: str) -> list[str]:
    """Session ids of ``preset`` in generation order (pure: nothing is simulated)."""
    return [s.session_id for s in get_preset(preset).sessions]

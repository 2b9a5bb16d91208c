"""Simulate sessions and write a dandiset-like folder.

Layout written by :func:`simulate_dataset` (whole folder written atomically)::

    DIR/dandiset.yaml
    DIR/sub-<S>/sub-<S>_ses-<CO|RT>-<YYYYMMDD>_behavior+ecephys.nwb
    DIR/derivatives/ground-truth/<session_id>.npz     (ingest never reads these)

FALCON stand-in presets write ``DIR/sub-<S>-<split>/<session_id>_behavior+ecephys.nwb``
in their FALCON layout (:mod:`rpnt.sim.falcon`) instead.

Each session is simulated by :mod:`rpnt.sim.session` and written by :mod:`rpnt.sim.nwb`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from rpnt.atomic import atomic_path, check_overwrite
from rpnt.errors import RpntError
from rpnt.provenance import provenance
from rpnt.sim.falcon import write_falcon_nwb
from rpnt.sim.nwb import write_nwb
from rpnt.sim.presets import Preset, get_preset
from rpnt.sim.session import simulate_session, subject_model, truth_arrays


def _check_writable(out: Path) -> None:
    """RpntError unless ``out`` can be created (nearest existing ancestor is writable)."""
    probe = out.parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise RpntError(f"cannot write {out}: {probe} is not a writable folder; "
                        "choose another --out")


def _dandiset_yaml(preset: Preset, seed: int) -> str:
    meta = {
        "identifier": "000688-sim",
        "name": f"rpnt simulated reaching data, preset {preset.name}",
        "description": (
            f"{preset.description}. Simulated by rpnt in the layout of DANDI:000688 "
            "(Perich, Miller et al.). Ground truth in derivatives/ground-truth/."
        ),
        "license": ["spdx:CC-BY-4.0"],
        "assetsSummary": {
            "numberOfFiles": len(preset.sessions),
            "species": [{"name": "Macaca mulatta"}],
        },
        "rpnt_simulator": {"preset": preset.name, "seed": seed,
                           "sessions": [s.session_id for s in preset.sessions],
                           "provenance": provenance({"preset": preset.name, "seed": seed})},
    }
    return yaml.safe_dump(meta, sort_keys=False)


def simulate_dataset(preset_name: str, seed: int, out: str | Path, *, force: bool = False,
                     progress: bool = True) -> list[Path]:
    """Write the dandiset-like folder ``out`` for ``preset_name``; return the NWB paths.

    Errors (unknown preset, unwritable location, existing ``out`` without ``force``) are
    raised before anything is written; a failure midway leaves ``out`` untouched.
    """
    preset = get_preset(preset_name)
    out = Path(out)
    check_overwrite(out, force)
    _check_writable(out)
    models = {s: subject_model(seed, spec) for s, spec in preset.subjects.items()}
    with atomic_path(out, force=force) as tmp:
        tmp.mkdir()
        (tmp / "dandiset.yaml").write_text(_dandiset_yaml(preset, seed))
        truth_dir = tmp / "derivatives" / "ground-truth"
        truth_dir.mkdir(parents=True)
        for spec in tqdm(preset.sessions, desc=f"simulate {preset.name}", unit="session",
                         disable=not progress):
            sim = simulate_session(preset, spec, seed, models[spec.subject])
            nwb_path = tmp / spec.relpath
            nwb_path.parent.mkdir(exist_ok=True)
            if preset.extra.get("layout"):  # a FALCON stand-in
                write_falcon_nwb(sim, nwb_path, preset.extra["layout"])
            else:
                write_nwb(sim, nwb_path, waveforms_per_unit=preset.waveforms_per_unit)
            with open(truth_dir / f"{spec.session_id}.npz", "wb") as fh:
                np.savez(fh, **truth_arrays(sim, models[spec.subject]))
    return [out / s.relpath for s in preset.sessions]

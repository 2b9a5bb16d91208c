"""Cross-session Wiener transfer: units matched by the population neuron they record."""

import dataclasses

import numpy as np
import pytest

from rpnt.sim.presets import PRESETS
from rpnt.sim.session import simulate_session, subject_model, truth_arrays
from rpnt.sim.transfer import population_index, transfer_table, wiener_transfer
from tests.sim_helpers import session_data


@pytest.fixture(scope="module")
def two_days(tmp_path_factory):
    preset = PRESETS["tiny"]
    model = subject_model(0, preset.subjects["C"])
    out = []
    for spec in [s for s in preset.sessions if s.subject == "C" and s.task == "CO"]:
        sim = simulate_session(preset, spec, 0, model)
        path = tmp_path_factory.mktemp("truth") / f"{spec.session_id}.npz"
        with open(path, "wb") as fh:
            np.savez(fh, **truth_arrays(sim, model))
        out.append((session_data(sim), path))
    return out


def test_transfer_matches_units_by_population_neuron(two_days):
    (a, ta), (b, tb) = two_days
    pa, pb = population_index(a, ta), population_index(b, tb)
    row = wiener_transfer(a, b, pa, pb)
    assert row["shared_units"] == np.intersect1d(pa, pb).size > 5
    assert row["days_apart"] == 1106 and row["same_task"]
    # the same neurons carry velocity in both sessions: the source's decoder transfers
    assert row["transfer"] > 0.1 and row["within"] > row["transfer"] - 0.3
    # the target's units in another order (with their neurons): the same numbers
    perm = np.random.default_rng(0).permutation(b.n_unit)
    shuffled = dataclasses.replace(b, spike_counts=b.spike_counts[:, perm])
    assert wiener_transfer(a, shuffled, pa, pb[perm])["transfer"] == pytest.approx(
        row["transfer"], abs=1e-9)
    # ... but matched to the wrong neurons, the transfer falls apart
    wrong = wiener_transfer(a, shuffled, pa, pb)
    assert wrong["transfer"] < row["transfer"] - 0.1
    # a session transfers to itself exactly as it decodes itself
    self_row = wiener_transfer(a, a, pa, pa)
    assert self_row["transfer"] == pytest.approx(self_row["within"])
    assert [(r["source"], r["target"]) for r in transfer_table([a, b], [pa, pb])] == \
        [(a.session, b.session), (b.session, a.session)]

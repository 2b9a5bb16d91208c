"""Dates beyond the pretraining span rotate in order: no aliasing over ten years.

A decoder is deployed after its pretraining, so its target's date lies outside the dates
its date band was fitted to. The band's slowest pair has wavelength 2 x (span + ten
years) (rpnt.model.config.DATE_HORIZON): every date within ten years of the span turns
by less than half a turn from every pretraining date, so the rotation distance grows with
the distance in days and no later date lands at the rotation of a date near the span.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from rpnt.data.batches import DataExtent
from rpnt.model.config import DATE_HORIZON, RPNTConfig
from tests.model_helpers import build, tiny_batch, tiny_config

torch.set_num_threads(1)

FIRST, LAST = 1000.0, 1182.0  # half a year of pretraining sessions (days since 2013-01-01)


def _extent() -> DataExtent:
    return DataExtent(max_units=8, n_subjects=2, n_tasks=1, days=(FIRST, LAST))


def _date_rotation(cfg: RPNTConfig, days: np.ndarray) -> np.ndarray:
    """(n, 2 x pairs) cos / sin of every date-band pair at each date."""
    rot = build(cfg).encoder.rotary
    omega = rot.inv_freq[rot.owner == rot.coords.index("date")].numpy()
    ang = days[:, None] * omega[None, :]
    return np.concatenate([np.cos(ang), np.sin(ang)], axis=1)


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_date_rotation_is_order_preserving_over_ten_years(size):
    cfg = RPNTConfig.preset(size).fitted(_extent())
    rot = build(cfg).encoder.rotary
    lam = 2 * np.pi / rot.inv_freq[rot.owner == rot.coords.index("date")].numpy()
    assert lam.max() == pytest.approx(2 * (LAST - FIRST + DATE_HORIZON))
    # the slowest pair: its chord from every pretraining date grows strictly with the
    # distance in days, from the span's first date to ten years after its last
    days = np.arange(FIRST, LAST + DATE_HORIZON + 1.0)
    slow = 2 * np.pi / lam.max()
    for ref in (FIRST, LAST):
        chord = np.abs(np.sin((days - ref) * slow / 2))
        after = days >= ref
        assert np.all(np.diff(chord[after]) > 0), ref
        assert np.all(np.diff(chord[~after]) < 0), ref


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_no_later_date_lands_at_a_date_near_the_span(size):
    cfg = RPNTConfig.preset(size).fitted(_extent())
    span = _date_rotation(cfg, np.arange(FIRST - 30.0, LAST + 31.0))  # span +- a month
    later = np.arange(LAST + 60.0, LAST + DATE_HORIZON + 1.0, 7.0)  # 2 months .. 10 years
    rot = _date_rotation(cfg, later)
    # distance of each later date's whole date rotation to the nearest near-span date: at
    # least what the slowest pair alone turns in the month between them (fast pairs wrap
    # every few weeks by design; the slowest one keeps dates apart)
    dist = np.sqrt(((rot[:, None, :] - span[None, :, :]) ** 2).sum(-1)).min(axis=1)
    lam = 2 * (LAST - FIRST + DATE_HORIZON)
    floor = 2 * np.sin(np.pi * 30.0 / lam)
    assert dist.min() >= floor * (1 - 1e-9)


def test_a_date_farther_away_moves_the_untrained_model_more():
    # the whole model (context tokens on, float64): the target of the cross-session
    # scenario, 1106 days after the first pretraining date, moves the outputs more than
    # +2 days; +1 year more than +1 day (a band fitted to the span alone wrapped both)
    cfg = tiny_config().fitted(_extent())
    model = build(cfg).double()
    counts, um, coords, sm = tiny_batch(cfg)
    coords = {k: v.double() for k, v in coords.items()}
    coords["date"] = torch.full_like(coords["date"], FIRST)

    def move(days: float) -> float:
        moved = {**coords, "date": coords["date"] + days}
        with torch.no_grad():
            ref = model.velocity(counts.double(), um, coords, sm)
            return float((model.velocity(counts.double(), um, moved, sm) - ref).abs().max())

    effects = [move(d) for d in (1.0, 2.0, 30.0, 365.0, 1106.0, DATE_HORIZON)]
    assert all(b > a for a, b in itertools.pairwise(effects)), effects

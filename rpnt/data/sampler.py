"""Pretraining batches drawn without replacement within an epoch, split over ranks.

:class:`EpochSampler` numbers the batches of a run (``index`` 0, 1, 2, ... one per
optimizer step, or per micro-step with gradient accumulation) and makes batch ``index``
a pure function of ``(seed, index)``: a run resumes anywhere, with any number of ranks,
and draws the same batches.

Epoch ``e``: each session's valid window starts are shuffled (a generator seeded with
``(seed, e, session)``) and cut into groups of ``n_win`` windows (the last incomplete
group of a session is left for another epoch; a session with fewer starts than ``n_win``
gives one group, topped up with repeats: the only way a window appears twice in a
batch), and the groups of all sessions are shuffled together (seeded with ``(seed,
e)``). Sessions thus come up in proportion to their windows, as with
:class:`rpnt.data.batches.BatchSampler`, but no window is drawn twice in an epoch. The
plan holds two int32 per group; a session's shuffled starts are made when one of its
groups is drawn (the last 16 kept), so memory stays small for large corpora.

Batch ``index`` is group ``index mod G`` of epoch ``index // G`` (``G`` groups per
epoch): ``subsets`` copies of each window with their unit choice, the mask draws of the
objective (``mask_u``, ``unit_keys``), all drawn for the whole batch from a generator
seeded with ``(seed, index)``. Rank ``part`` of ``parts`` gets rows ``[part * B/parts,
(part + 1) * B/parts)`` of it: disjoint windows, the same draws for a sample whatever
rank holds it, so N ranks see exactly the batch one process sees.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from rpnt.data.batches import Observer, SessionWindows, eval_unit_choice, usable_windows
from rpnt.errors import RpntError


class EpochSampler:
    """Batches of ``batch_size`` rows (``batch_size // subsets`` windows x ``subsets``
    unit subsets) from ``windows``; see the module docstring.

    ``unit_sampling`` "fixed" uses the evaluation choice of units (one copy per window);
    "random" draws a subset per copy. ``observer`` (tests) sees every window and unit
    slot that reaches a rank's batch.
    """

    def __init__(self, windows: Sequence[SessionWindows], batch_size: int, subsets: int = 1,
                 with_velocity: bool = True, observer: Observer | None = None,
                 unit_sampling: str = "random", seed: int = 0):
        self.windows = usable_windows(windows, batch_size, subsets, unit_sampling)
        # The fixed unit choice would make every copy of a window identical: one copy each.
        self.copies = 1 if unit_sampling == "fixed" else subsets
        self.n_win = batch_size // self.copies
        self.rows = self.n_win * self.copies
        self.with_velocity, self.observer = with_velocity, observer
        self.unit_sampling, self.seed = unit_sampling, seed
        self._groups = np.array([max(1, w.starts.size // self.n_win) for w in self.windows])
        self.groups_per_epoch = int(self._groups.sum())
        self._epoch: tuple[int, np.ndarray, np.ndarray] | None = None
        self._orders: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()

    def epoch_plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(session index (G,), group of that session (G,)) of every batch of ``epoch``:
        O(windows / n_win) memory, the windows of a group come from :meth:`order`."""
        if self._epoch is None or self._epoch[0] != epoch:
            sessions = np.repeat(np.arange(len(self.windows), dtype=np.int32), self._groups)
            within = np.concatenate([np.arange(g, dtype=np.int32) for g in self._groups])
            shuffle = np.random.default_rng([self.seed, 0x5EED, epoch]).permutation(
                self.groups_per_epoch)
            self._epoch = (epoch, sessions[shuffle], within[shuffle])
        return self._epoch[1], self._epoch[2]

    def order(self, epoch: int, k: int) -> np.ndarray:
        """Session ``k``'s window starts in ``epoch``'s shuffled order (the last few
        sessions' kept), topped up with repeats when it has fewer than ``n_win``."""
        key = (epoch, k)
        if key in self._orders:
            self._orders.move_to_end(key)
            return self._orders[key]
        starts = self.windows[k].starts
        rng = np.random.default_rng([self.seed, 0x5EED, epoch, k])
        order = starts[rng.permutation(starts.size)]
        if order.size < self.n_win:  # fewer windows than a batch: all, topped up
            order = np.concatenate([order, rng.choice(order, self.n_win - order.size)])
        self._orders[key] = order
        if len(self._orders) > 16:
            self._orders.popitem(last=False)
        return order

    def draw(self, index: int, part: int = 0, parts: int = 1) -> dict[str, Any]:
        """Rank ``part``'s share (of ``parts``) of batch ``index`` (model inputs + draws)."""
        if self.rows % parts:
            raise RpntError(f"a batch of {self.rows} windows cannot be split evenly over "
                            f"{parts} ranks; make train.batch_size / train.accumulation a "
                            f"multiple of {parts}")
        epoch = index // self.groups_per_epoch
        group_sessions, group_within = self.epoch_plan(epoch)
        pos = index % self.groups_per_epoch
        k, j = int(group_sessions[pos]), int(group_within[pos])
        sw = self.windows[k]
        group = self.order(epoch, k)[j * self.n_win:(j + 1) * self.n_win]
        starts = np.repeat(group, self.copies)
        rng = np.random.default_rng([self.seed, 0xBA7C, index])
        if self.unit_sampling == "fixed":
            units = eval_unit_choice(sw, self.rows, self.seed)
        else:
            units = sw.choose_units(rng, self.rows)
        mask_u = rng.random(2)
        unit_keys = rng.random(units.shape, dtype=np.float32)
        per = self.rows // parts
        rows = slice(part * per, (part + 1) * per)
        if self.observer is not None:
            bins = starts[rows, None] + np.arange(sw.window)[None, :]
            self.observer(sw.session, bins, units[rows])
        batch = sw.make_batch(starts[rows], units[rows], with_velocity=self.with_velocity)
        window = np.repeat(np.arange(self.n_win), self.copies)
        batch["window"] = torch.from_numpy(window[rows].copy())
        batch["draws"] = {"mask_u": torch.from_numpy(mask_u),
                          "unit_keys": torch.from_numpy(unit_keys[rows].copy()),
                          "row": torch.arange(self.rows)[rows],
                          "rows": torch.tensor(self.rows)}
        return batch

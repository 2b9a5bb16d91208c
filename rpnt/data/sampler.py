"""Pretraining batches drawn without replacement within an epoch, split over ranks.

:class:`EpochSampler` numbers the batches of a run (``index`` 0, 1, 2, ... one per
optimizer step, or per micro-step with gradient accumulation) and makes batch ``index``
a pure function of ``(seed, index)``: a run resumes anywhere, with any number of ranks,
and draws the same batches.

Epoch ``e`` (a generator seeded with ``(seed, e)``): each session's valid window starts
are shuffled and cut into groups of ``n_win`` windows (the last incomplete group of a
session is left for another epoch; a session with fewer starts than ``n_win`` gives one
group, topped up with repeats: the only way a window appears twice in a batch), and the
groups of all sessions are shuffled together. Sessions thus come up in proportion to
their windows, as with :class:`rpnt.data.batches.BatchSampler`, but no window is drawn
twice in an epoch.

Batch ``index`` is group ``index mod G`` of epoch ``index // G`` (``G`` groups per
epoch): ``subsets`` copies of each window with their unit choice, the mask draws of the
objective (``mask_u``, ``unit_keys``), all drawn for the whole batch from a generator
seeded with ``(seed, index)``. Rank ``part`` of ``parts`` gets rows ``[part * B/parts,
(part + 1) * B/parts)`` of it: disjoint windows, the same draws for a sample whatever
rank holds it, so N ranks see exactly the batch one process sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from rpnt.data.batches import Observer, SessionWindows, eval_unit_choice
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
        self.windows = [w for w in windows if w.starts.size]
        if not self.windows:
            names = ", ".join(w.session.session for w in windows) or "(none)"
            raise RpntError(f"no window of {windows[0].window if windows else '?'} "
                            f"consecutive training bins in sessions {names}; use a shorter "
                            "window or sessions with longer trials")
        if subsets < 1 or batch_size < subsets:
            raise RpntError(f"subsets ({subsets}) must be in 1..batch_size ({batch_size})")
        if unit_sampling not in ("random", "fixed"):
            raise RpntError(f"unit_sampling {unit_sampling!r} must be 'random' or 'fixed'")
        # The fixed unit choice would make every copy of a window identical: one copy each.
        self.copies = 1 if unit_sampling == "fixed" else subsets
        self.n_win = batch_size // self.copies
        self.rows = self.n_win * self.copies
        self.with_velocity, self.observer = with_velocity, observer
        self.unit_sampling, self.seed = unit_sampling, seed
        sizes = [w.starts.size for w in self.windows]
        self.groups_per_epoch = sum(max(1, n // self.n_win) for n in sizes)
        self._epoch: tuple[int, np.ndarray, np.ndarray] | None = None

    def epoch_plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(session index (G,), window starts (G, n_win)) of every batch of ``epoch``."""
        if self._epoch is not None and self._epoch[0] == epoch:
            return self._epoch[1], self._epoch[2]
        rng = np.random.default_rng([self.seed, 0x5EED, epoch])
        sessions, starts = [], []
        for k, w in enumerate(self.windows):
            order = w.starts[rng.permutation(w.starts.size)]
            n_groups = order.size // self.n_win
            if n_groups == 0:  # fewer windows than a batch: all of them, topped up
                extra = rng.choice(order, self.n_win - order.size)
                order, n_groups = np.concatenate([order, extra]), 1
            starts.append(order[:n_groups * self.n_win].reshape(n_groups, self.n_win))
            sessions.append(np.full(n_groups, k))
        shuffle = rng.permutation(self.groups_per_epoch)
        plan = np.concatenate(sessions)[shuffle], np.concatenate(starts)[shuffle]
        self._epoch = (epoch, *plan)
        return plan

    def draw(self, index: int, part: int = 0, parts: int = 1) -> dict[str, Any]:
        """Rank ``part``'s share (of ``parts``) of batch ``index`` (model inputs + draws)."""
        if self.rows % parts:
            raise RpntError(f"a batch of {self.rows} windows cannot be split evenly over "
                            f"{parts} ranks; make train.batch_size / train.accumulation a "
                            f"multiple of {parts}")
        group_sessions, group_starts = self.epoch_plan(index // self.groups_per_epoch)
        pos = index % self.groups_per_epoch
        sw = self.windows[int(group_sessions[pos])]
        starts = np.repeat(group_starts[pos], self.copies)
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

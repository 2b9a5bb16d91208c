"""Trial splits, bin-level splits and the scoring mask.

Peers' convention (datasets.md): valid trials are shuffled with seed 42 and split 70/10/20
into train/valid/test; invalid trials are "none". Bin level: every bin is "train" except
bins inside valid/test trials (their split) and bins within ``padding_s`` of a valid/test
trial ("none"), so no training window touches held-out data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rpnt.data.session import SPLIT_CODES

SPLIT_LABELS = ("train", "valid", "test")


@dataclass
class SplitConfig:
    """How trials and bins are split (recorded in the store's attrs)."""

    seed: int = 42
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)  #: train, valid, test
    padding_s: float = 1.0  #: train bins stay this far from valid/test trials
    use_file_split: bool = False  #: NLB: take train/valid from the file's split column

    def __post_init__(self) -> None:
        fr = tuple(float(x) for x in self.fractions)
        if len(fr) != 3 or min(fr) < 0 or abs(sum(fr) - 1.0) > 1e-6:
            raise ValueError(f"split fractions must be three non-negative numbers summing to "
                             f"1, got {self.fractions}")
        self.fractions = fr
        if self.padding_s < 0:
            raise ValueError("split padding must be >= 0 s")


def trial_splits(valid: np.ndarray, cfg: SplitConfig,
                 file_split: np.ndarray | None = None) -> np.ndarray:
    """(n_trial,) str: train/valid/test for valid trials, "none" for the rest.

    Valid trials are permuted with ``default_rng(seed)``; the first round(0.7 n) are train,
    the next round(0.1 n) valid, the rest test.
    """
    valid = np.asarray(valid, dtype=bool)
    out = np.full(valid.shape[0], "none", dtype=object)
    if cfg.use_file_split and file_split is not None:
        ok = valid & np.isin(file_split, SPLIT_LABELS)
        out[ok] = file_split[ok]
        return out
    idx = np.flatnonzero(valid)
    perm = np.random.default_rng(cfg.seed).permutation(idx)
    n = idx.shape[0]
    n_train = round(cfg.fractions[0] * n)
    n_valid = round(cfg.fractions[1] * n)
    n_valid = min(n_valid, n - n_train)
    out[perm[:n_train]] = "train"
    out[perm[n_train:n_train + n_valid]] = "valid"
    out[perm[n_train + n_valid:]] = "test"
    return out


def interval_mask(time: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """(n_time,) bool: bins whose start lies in any ``[start_i, stop_i)``.

    Same rule as ``SessionData.trial_bins``: a difference array over searchsorted bounds.
    """
    n = time.shape[0]
    ok = np.isfinite(start) & np.isfinite(stop) & (stop > start)
    lo = np.searchsorted(time, start[ok], side="left")
    hi = np.searchsorted(time, stop[ok], side="left")
    delta = np.zeros(n + 1, dtype=np.int64)
    np.add.at(delta, lo, 1)
    np.add.at(delta, hi, -1)
    return np.cumsum(delta[:-1]) > 0


def bin_split(time: np.ndarray, start: np.ndarray, stop: np.ndarray, tsplit: np.ndarray,
              padding_s: float) -> np.ndarray:
    """(n_time,) int8 codes (``SPLIT_CODES``) of every bin."""
    out = np.full(time.shape[0], SPLIT_CODES["train"], dtype=np.int8)
    held = (tsplit == "valid") | (tsplit == "test")
    pad = interval_mask(time, start[held] - padding_s, stop[held] + padding_s)
    out[pad] = SPLIT_CODES["none"]
    for name in ("valid", "test"):
        sel = tsplit == name
        out[interval_mask(time, start[sel], stop[sel])] = SPLIT_CODES[name]
    return out


def eval_mask(time: np.ndarray, ev_start: np.ndarray, ev_stop: np.ndarray,
              valid: np.ndarray) -> np.ndarray:
    """(n_time,) bool: bins scored by decoding (the scored period of every valid trial).

    Evaluation intersects this with ``split == test`` (or valid) itself.
    """
    return interval_mask(time, ev_start[valid], ev_stop[valid])

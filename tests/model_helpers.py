"""Small inputs and configs shared by the model tests (tests/test_model*.py etc.)."""

from __future__ import annotations

import torch

from rpnt.model import RPNT, RPNTConfig


def tiny_config(**overrides) -> RPNTConfig:
    """A tiny RPNT (d=32, 2 heads) on 8 unit slots and 12-bin windows, dropout off."""
    base = dict(n_units=8, window=12, dropout=0.0,
                coords=("subject", "date", "task", "site_x", "site_y"))
    base.update(overrides)
    return RPNTConfig.preset("tiny", **base)


def tiny_batch(cfg: RPNTConfig, b: int = 3, s: int = 2, t: int | None = None, seed: int = 0):
    """(counts (B,S,T,N), unit_mask (B,S,N), coords {name: (B,S)}, site_mask (B,S))."""
    g = torch.Generator().manual_seed(seed)
    t = t or cfg.window
    n = cfg.n_units
    counts = torch.poisson(torch.rand(b, s, t, n, generator=g) * 2.0)
    unit_mask = torch.ones(b, s, n, dtype=torch.bool)
    unit_mask[:, -1, n - 2:] = False  # last site has two padded unit slots
    counts = counts * unit_mask[:, :, None, :]
    # Session metadata is one value per sample (same for all its sites); site geometry
    # differs between sites.
    coords = {c: (torch.rand(b, s, generator=g) if c.startswith("site_")
                  else torch.rand(b, 1, generator=g).expand(b, s).clone()) * 3
              for c in cfg.coords}
    site_mask = torch.ones(b, s, dtype=torch.bool)
    return counts, unit_mask, coords, site_mask


def build(cfg: RPNTConfig, seed: int = 0) -> RPNT:
    torch.manual_seed(seed)
    return RPNT(cfg).eval()

"""Dropout whose masks cost a quarter of the random draws of ``torch.nn.Dropout``'s.

``torch.nn.Dropout`` on the CPU draws one Bernoulli sample per element, which made the
dropout masks a quarter of a tiny RPNT training step (``rpnt bench train``). Here each
64-bit draw of the generator gives four 16-bit lanes, and an element is kept where its
lane is at or above a threshold: the drop probability is ``p`` rounded to a multiple of
1/65536 (at most 7.6e-6 off), and kept elements are scaled by the exact inverse of the
keep probability, so the expectation is unchanged. Masks come from the global generator
(or the one given), so a seeded run draws the same masks every time.
"""

from __future__ import annotations

import torch
from torch import nn

_LANES = 65536  # values of one 16-bit lane


def keep_threshold(p: float) -> tuple[int, float]:
    """(lane threshold, scale of kept elements) for drop probability ``p`` in [0, 1)."""
    dropped = min(_LANES - 1, round(p * _LANES))  # lanes below the threshold drop
    return dropped - _LANES // 2, _LANES / (_LANES - dropped)


def keep_mask(shape: tuple[int, ...], p: float, dtype: torch.dtype, device: torch.device,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """A ``shape`` tensor of ``dtype``: 1 / (1 - p') where kept, 0 where dropped."""
    n = 1
    for s in shape:
        n *= s
    words = torch.empty(-(-n // 4), dtype=torch.int64, device=device)
    # every 64-bit pattern but one: the four 16-bit lanes are uniform and independent
    words.random_(-(2**63), 2**63 - 1, generator=generator)
    lanes = words.view(torch.int16)[:n].view(shape)
    threshold, scale = keep_threshold(p)
    return lanes.ge(threshold).to(dtype).mul_(scale)


class Dropout(nn.Module):
    """Drop-in for ``nn.Dropout(p)`` (training only; identity in eval mode or at p = 0)."""

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        return x * keep_mask(tuple(x.shape), self.p, x.dtype, x.device)

    def extra_repr(self) -> str:
        return f"p={self.p}"

"""Per-context linear maps: the unit read-in and the reconstruction read-out.

Unit slot ``i`` holds a different neuron in every session (and on every array of a
session), so the map between slots and the model's d-dimensional tokens is the one part
of the model that cannot be shared across recordings. :class:`ContextLinear` holds one
``Linear`` per *context* (a row of its weight table; a context is one site of one
session, see :class:`rpnt.data.batches.Vocab`) and applies, to each (sample, site), the
row named by an index tensor. With a single row it is exactly ``nn.Linear`` - the shared
read-in of the released code (``RPNTConfig.readin = "shared"``).

Per-context read-ins are how NDT2 (context read-in) and POYO (unit embeddings) let a
shared core learn from many sessions whose units differ; a new session needs only a new
row (learned at finetuning), which is what ``grow`` adds.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class ContextLinear(nn.Module):
    """``n_rows`` independent ``Linear(d_in -> d_out)`` maps, chosen per (sample, site).

    weight: (n_rows, d_in, d_out); bias: (n_rows, d_out). Initialised like ``nn.Linear``
    (uniform in +-1/sqrt(d_in)).
    """

    def __init__(self, d_in: int, d_out: int, n_rows: int = 1):
        super().__init__()
        self.d_in, self.d_out = d_in, d_out
        self.weight = nn.Parameter(torch.empty(n_rows, d_in, d_out))
        self.bias = nn.Parameter(torch.empty(n_rows, d_out))
        self._init(self.weight, self.bias)

    def _init(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        bound = 1.0 / math.sqrt(self.d_in)
        with torch.no_grad():
            weight.uniform_(-bound, bound)
            bias.uniform_(-bound, bound)

    @property
    def n_rows(self) -> int:
        return self.weight.shape[0]

    def forward(self, x: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, S, ..., d_in), rows (B, S) int64 or None (row 0) -> (B, S, ..., d_out)."""
        if rows is None or self.n_rows == 1:
            return x @ self.weight[0] + self.bias[0]
        rows = rows.to(x.device).long()
        if rows.shape != x.shape[:2]:
            raise ValueError(f"rows {tuple(rows.shape)} must be the (batch, sites) "
                             f"{tuple(x.shape[:2])} of the input")
        if int(rows.max()) >= self.n_rows or int(rows.min()) < 0:
            raise IndexError(f"context row {int(rows.max())} outside this model's "
                             f"{self.n_rows} read-in rows")
        b, s = rows.shape
        flat = x.reshape(b * s, -1, self.d_in)  # (B*S, L, d_in)
        w = self.weight[rows.reshape(-1)]  # (B*S, d_in, d_out)
        out = torch.baddbmm(self.bias[rows.reshape(-1)][:, None, :], flat, w)
        return out.reshape(*x.shape[:-1], self.d_out)

    @torch.no_grad()
    def grow(self, n_rows: int) -> None:
        """Add freshly initialised rows up to ``n_rows`` (existing rows are kept)."""
        extra = n_rows - self.n_rows
        if extra <= 0:
            return
        w = torch.empty(extra, self.d_in, self.d_out, dtype=self.weight.dtype,
                        device=self.weight.device)
        b = torch.empty(extra, self.d_out, dtype=self.bias.dtype, device=self.bias.device)
        self._init(w, b)
        self.weight = nn.Parameter(torch.cat([self.weight.detach(), w]))
        self.bias = nn.Parameter(torch.cat([self.bias.detach(), b]))

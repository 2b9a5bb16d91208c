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
row (learned at finetuning), which is what ``grow`` adds. A session with more units than
any before widens every row (``grow_inputs`` for the read-in, ``grow_outputs`` for the
read-out): old rows keep their weights, and their new slots are empty in their sessions.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class ContextLinear(nn.Module):
    """``n_rows`` independent ``Linear(d_in -> d_out)`` maps, chosen per (sample, site).

    weight: (n_rows, d_in, d_out); bias: (n_rows, d_out), or None with ``bias=False``.
    Initialised like ``nn.Linear`` (uniform in +-1/sqrt(d_in)).
    """

    def __init__(self, d_in: int, d_out: int, n_rows: int = 1, bias: bool = True):
        super().__init__()
        self.d_in, self.d_out = d_in, d_out
        self.weight = nn.Parameter(torch.empty(n_rows, d_in, d_out))
        self.bias = nn.Parameter(torch.empty(n_rows, d_out)) if bias else None
        self._init(self.weight)
        if self.bias is not None:
            self._init(self.bias)

    def _init(self, t: torch.Tensor) -> None:
        bound = 1.0 / math.sqrt(self.d_in)
        with torch.no_grad():
            t.uniform_(-bound, bound)

    def _fresh(self, *shape: int) -> torch.Tensor:
        t = torch.empty(*shape, dtype=self.weight.dtype, device=self.weight.device)
        self._init(t)
        return t

    @property
    def n_rows(self) -> int:
        return self.weight.shape[0]

    def forward(self, x: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, S, ..., d_in), rows (B, S) int64 or None (row 0) -> (B, S, ..., d_out)."""
        if rows is None or self.n_rows == 1:
            out = x @ self.weight[0]
            return out if self.bias is None else out + self.bias[0]
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
        if self.bias is None:
            out = torch.bmm(flat, w)
        else:
            out = torch.baddbmm(self.bias[rows.reshape(-1)][:, None, :], flat, w)
        return out.reshape(*x.shape[:-1], self.d_out)

    @torch.no_grad()
    def grow(self, n_rows: int) -> None:
        """Add freshly initialised rows up to ``n_rows`` (existing rows are kept)."""
        extra = n_rows - self.n_rows
        if extra <= 0:
            return
        self.weight = nn.Parameter(torch.cat([self.weight.detach(),
                                              self._fresh(extra, self.d_in, self.d_out)]))
        if self.bias is not None:
            self.bias = nn.Parameter(torch.cat([self.bias.detach(),
                                                self._fresh(extra, self.d_out)]))

    @torch.no_grad()
    def grow_inputs(self, d_in: int) -> None:
        """Widen every row to ``d_in`` inputs; the new inputs' weights are fresh."""
        extra = d_in - self.d_in
        if extra <= 0:
            return
        self.d_in = d_in
        new = self._fresh(self.n_rows, extra, self.d_out)
        self.weight = nn.Parameter(torch.cat([self.weight.detach(), new], dim=1))

    @torch.no_grad()
    def grow_outputs(self, d_out: int) -> None:
        """Widen every row to ``d_out`` outputs; the new outputs' weights are fresh."""
        extra = d_out - self.d_out
        if extra <= 0:
            return
        self.d_out = d_out
        self.weight = nn.Parameter(torch.cat(
            [self.weight.detach(), self._fresh(self.n_rows, self.d_in, extra)], dim=2))
        if self.bias is not None:
            self.bias = nn.Parameter(torch.cat([self.bias.detach(),
                                                self._fresh(self.n_rows, extra)], dim=1))

"""Self-supervised objectives: causal time masks, unit masks, Poisson NLL, site contrast.

Masking (per batch): a time-mask ratio and a unit-mask ratio are drawn from U(a, b) (or
fixed, for the ablation). The time mask is one contiguous block of *future* bins, the last
``round(r_t * T)`` bins of the window, so a causal encoder forecasts them from the past.
The unit mask hides ``round(r_u * n_real)`` of each site's real units at every bin. Masked
inputs are zeroed; the loss is the Poisson NLL on the masked entries (time-masked bins or
masked units, real units and sites only).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rpnt import ranks
from rpnt.model.config import RPNTConfig


def draw_mask_ratios(cfg: RPNTConfig, generator: torch.Generator | None = None,
                     u: torch.Tensor | None = None) -> tuple[float, float]:
    """(time_ratio, unit_ratio) for one batch: both ``fixed_mask_ratio`` or two U(a, b).

    ``u``: two U(0, 1) draws made elsewhere (the batch sampler's, shared by every rank of
    a data-parallel step); None draws them with ``generator``.
    """
    if cfg.fixed_mask_ratio is not None:
        return float(cfg.fixed_mask_ratio), float(cfg.fixed_mask_ratio)
    lo, hi = cfg.mask_ratio_range
    if u is None:
        u = torch.rand(2, generator=generator, dtype=torch.float64)
    u = u.detach().to("cpu", torch.float64)
    r = lo + (hi - lo) * u
    return float(r[0]), float(r[1])


def time_block_mask(n_bins: int, ratio: float, device: torch.device | None = None) -> torch.Tensor:
    """(T,) bool: the last ``round(ratio * T)`` bins (at least 1) are masked."""
    n = min(n_bins, max(1, round(ratio * n_bins)))
    m = torch.zeros(n_bins, dtype=torch.bool, device=device)
    m[n_bins - n:] = True
    return m


def unit_drop_mask(unit_mask: torch.Tensor, ratio: float,
                   generator: torch.Generator | None = None,
                   keys: torch.Tensor | None = None) -> torch.Tensor:
    """(B, S, N) bool: per (sample, site) a random ``round(ratio * n_real)`` (>= 1) real units.

    ``unit_mask`` (B, S, N) bool marks real units; padded slots are never chosen.
    ``keys`` (B, S, N): U(0, 1) draws made elsewhere (the batch sampler's, one per sample
    whatever rank holds it); None draws them with ``generator``.
    """
    if keys is None:
        keys = torch.rand(unit_mask.shape, generator=generator)
    keys = keys.to(unit_mask.device, torch.float32)
    keys = keys.masked_fill(~unit_mask, float("inf"))
    rank = keys.argsort(dim=-1).argsort(dim=-1)  # 0 = smallest key
    n_real = unit_mask.sum(-1, keepdim=True)
    n_drop = (ratio * n_real.double()).round().long().clamp(min=1)
    n_drop = torch.minimum(n_drop, n_real)
    return (rank < n_drop) & unit_mask


def global_mean(total: torch.Tensor, count: torch.Tensor, across_ranks: bool = False
                ) -> torch.Tensor:
    """``total / count``, or with ``across_ranks`` this rank's share of the mean over all
    ranks: ``world * total / (count summed over ranks)``, so that the mean of the ranks'
    values (and of their gradients, as data-parallel averaging takes) is the mean over
    every rank's entries: N ranks optimise what one process does with the whole batch."""
    if across_ranks and ranks.active():
        world = ranks.current().world
        return world * total / ranks.global_sum(count).clamp(min=1.0)
    return total / count.clamp(min=1.0)


def poisson_nll(rates: torch.Tensor, counts: torch.Tensor, mask: torch.Tensor,
                eps: float = 1e-8, across_ranks: bool = False) -> torch.Tensor:
    """Mean Poisson negative log-likelihood over the entries where ``mask`` is True.

    -log p(y | r) = r - y log r + log(y!), with ``eps`` inside the log for r = 0.
    All arguments share one shape; ``rates`` must be non-negative. ``across_ranks``: the
    mean is over the masked entries of every rank (:func:`global_mean`).
    """
    m = mask.to(rates.dtype)
    y = counts.to(rates.dtype)
    nll = rates - y * torch.log(rates + eps) + torch.lgamma(y + 1.0)
    return global_mean((nll * m).sum(), m.sum(), across_ranks)


def site_contrastive(z: torch.Tensor, site_mask: torch.Tensor | None, mode: str,
                     temperature: float = 0.1,
                     window: torch.Tensor | None = None,
                     across_ranks: bool = False) -> torch.Tensor:
    """Supervised-contrastive loss over per-site representations.

    Args:
        z: (B, S, d) per-site representations (e.g. mean over bins); site ``s`` is the same
            recording site in every sample of the batch.
        site_mask: (B, S) bool real sites, or None.
        mode: ``"site_discrimination"`` (released code: sites are the classes; positives are
            the same site in other samples, so sites are pushed apart) or
            ``"site_invariance"`` (paper: positives are the other sites of the same sample,
            i.e. the same time window seen from another site; they are pulled together).
        window: (B,) int64 id of the time window each sample shows, or None (every sample
            its own window). Samples sharing an id are copies of one window (other unit
            subsets): an anchor never sees a copy of its own window, neither as a positive
            nor as a negative, so copies cannot lift the loss floor (with copies counted
            as negatives, a batch of two copies per window floors at log 3). A window's
            own other sites are positives in ``site_invariance``; in
            ``site_discrimination`` they are negatives, which is how that objective
            pushes sites apart.
        across_ranks: the batch is the rows of every rank (gathered in rank order, each
            rank's gradient flowing back to its own rows); every rank computes the same
            loss over all of them. ``window`` ids must then be global.
    Returns:
        scalar; 0 (still attached to ``z``) when no anchor has a positive, e.g. one site.
    """
    b, s, d = z.shape
    if site_mask is None:
        site_mask = torch.ones(b, s, dtype=torch.bool, device=z.device)
    if across_ranks and ranks.active():
        if window is None:  # every sample its own window: ids unique over ranks
            window = torch.arange(b, device=z.device) + ranks.current().rank * b
        z = ranks.gather_rows(z)
        site_mask = ranks.gather_rows(site_mask.to(torch.uint8)).bool()  # gloo: no bool
        window = ranks.gather_rows(window.to(z.device).long())
        b = z.shape[0]
    valid = site_mask.reshape(-1)
    zn = F.normalize(z.reshape(b * s, d), dim=-1)
    sim = zn @ zn.T / temperature  # cosine similarities
    own = torch.arange(b, device=z.device)
    win = own if window is None else window.to(z.device).long()
    sample = own.repeat_interleave(s)
    win = win.repeat_interleave(s)  # window of each (sample, site) row
    site = torch.arange(s, device=z.device).repeat(b)
    same_sample = sample[:, None] == sample[None, :]
    same_site = site[:, None] == site[None, :]
    copy = (win[:, None] == win[None, :]) & ~same_sample  # rows of another copy
    eye = torch.eye(b * s, dtype=torch.bool, device=z.device)
    pair_ok = valid[:, None] & valid[None, :] & ~eye & ~copy
    if mode == "site_discrimination":
        pos = same_site & ~same_sample
    elif mode == "site_invariance":
        pos = same_sample & ~same_site
    else:
        raise ValueError(f"unknown contrastive mode {mode!r}")
    pos = pos & pair_ok
    # A large finite fill (not -inf) keeps rows without any valid pair NaN-free in backward.
    logp = sim.masked_fill(~pair_ok, -1e9).log_softmax(dim=-1)
    n_pos = pos.sum(-1)
    anchors = n_pos > 0
    if not bool(anchors.any()):
        return z.sum() * 0.0
    per_anchor = -(logp.masked_fill(~pos, 0.0)).sum(-1)[anchors] / n_pos[anchors]
    return per_anchor.mean()

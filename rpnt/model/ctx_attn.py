"""Fused, chunked kernel of strictly causal context-based attention (forward + backward).

Math (per sample-head map, L queries and keys, c = k // 2)::

    S  = q k^T / sqrt(dh), with S[i, j] = 0 for j > i            (future scores zeroed)
    C[i, j] = sum_{a, b < k} K[i, a*k + b] * S[i - a, j + b - c]  (0 outside the map)
    P  = softmax_j(C with C[i, j] = -inf for j > i)
    out = dropout(P) v

Why a custom autograd function: done with autograd, the k*k shifted adds of full
(B, H, L, L) maps are memory-bound (each pass streams the whole map, and every slice's
backward allocates a padded zero map). Here the maps are processed in chunks of
sample-heads small enough to stay in cache, so the k*k passes run on cached data; the
causal mask and the 1/sqrt(dh) scale are folded into the passes that exist anyway. Saved
for backward: q, k, v, the kernels, the padded score maps and the probabilities (two
(B*H, L, L)-sized maps; recomputing the scores in the backward instead saves one map but
costs ~10 % more time at T=50) and, with dropout, a 1-byte keep mask.
"""

from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable

#: Target bytes of one chunk's (n_maps, L, L) float32 score maps: fits a core's L2 cache.
CHUNK_BYTES = 1 << 20

#: Reused per-chunk scratch maps, keyed by (name, shape, dtype, device). Fresh large
#: allocations are zero-filled pages from the OS (page faults on first touch), which cost
#: as much as the shifted adds themselves; a handful of chunk-sized buffers (a few MiB at
#: most) are kept instead.
_SCRATCH: dict[tuple, torch.Tensor | tuple[torch.Tensor, torch.Tensor]] = {}


def _scratch(name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """A reusable buffer; created zero-filled (users rely on untouched parts staying 0)."""
    key = (name, shape, like.dtype, like.device)
    buf = _SCRATCH.get(key)
    if buf is None:
        if len(_SCRATCH) > 64:  # many shapes seen (e.g. varying lengths): start over
            _SCRATCH.clear()
        buf = _SCRATCH[key] = like.new_zeros(shape)
    return buf


def _chunk(n_maps: int, length: int) -> int:
    return max(1, min(n_maps, CHUNK_BYTES // (4 * length * length)))


def _masks(n: int, k: int, scale: float, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Constants of a call shape (cached with the scratch buffers; never written to).

    Returns ``pad_scale`` (L+k-1, L+2c): ``scale`` where the padded map holds a causal
    score (key <= query), else 0, and ``neg_future`` (L, L): 0 on/below the diagonal,
    -inf above it.
    """
    key = ("masks", n, k, scale, like.dtype, like.device)
    if key not in _SCRATCH:
        _SCRATCH[key] = _build_masks(n, k, scale, like)
    return _SCRATCH[key]


def _build_masks(n: int, k: int, scale: float,
                 like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    c = k // 2
    pad_scale = like.new_zeros(n + k - 1, n + 2 * c)
    pad_scale[k - 1:, c: c + n] = torch.ones(n, n, dtype=like.dtype, device=like.device).tril()
    pad_scale.mul_(scale)
    neg_future = like.new_zeros(n, n).masked_fill_(
        torch.ones(n, n, dtype=torch.bool, device=like.device).triu(1), float("-inf"))
    return pad_scale, neg_future


def _tap_views(padded: torch.Tensor, k: int, n: int) -> list[torch.Tensor]:
    """The k*k (M, L, L) windows of a padded map, in tap order ``a*k + b``.

    Window ``a*k + b`` is ``padded[:, k-1-a : k-1-a+L, b : b+L]`` (rows i - a, columns
    j + b - c of the unpadded map). Built with unfold, so all views come from two calls.
    """
    wins = padded.unfold(1, n, 1).unfold(2, n, 1)  # (M, k, k, L, L) views: [r0, b]
    rows = wins.unbind(1)[::-1]  # a = k-1-r0 ascending (no flip: that would copy)
    return [w for row in rows for w in row.unbind(1)]


def _padded_scores(q: torch.Tensor, kk: torch.Tensor, k: int, pad_scale: torch.Tensor,
                   out: torch.Tensor) -> torch.Tensor:
    """(M, L+k-1, L+2c) scaled scores, zero above the diagonal and in the padding.

    q is zero-padded with k-1 rows on top and the keys with c rows on both sides, so one
    bmm writes the padded map directly (into ``out``, a contiguous chunk of the saved maps).
    """
    c = k // 2
    m, n, dh = q.shape
    # Scratch copies whose padding rows are never written, so they stay zero.
    qp = _scratch("qpad", (m, n + k - 1, dh), q)
    kp = _scratch("kpad", (m, n + 2 * c, dh), q)
    qp[:, k - 1:].copy_(q)
    kp[:, c: c + n].copy_(kk)
    return torch.bmm(qp, kp.transpose(-1, -2), out=out).mul_(pad_scale)


def _conv_masked(padded: torch.Tensor, kern: torch.Tensor, k: int, neg_future: torch.Tensor,
                 out: torch.Tensor) -> torch.Tensor:
    """Shifted weighted adds + causal mask into ``out``.

    padded (M, L+k-1, L+2c), kern (M, L, k*k) -> out (M, L, L).
    """
    n = kern.shape[-2]
    weights = kern.unsqueeze(-2).unbind(-1)  # k*k views (M, L, 1): one weight per query row
    for t, win in enumerate(_tap_views(padded, k, n)):
        if t == 0:
            torch.addcmul(neg_future, win, weights[0], out=out)  # the -inf mask rides along
        else:
            out.addcmul_(win, weights[t])
    return out


class ContextAttentionFn(torch.autograd.Function):
    """q, k, v (M, L, dh), kernels (M, L, k*k) -> out (M, L, dh), probs (M, L, L).

    M = batch * heads. ``probs`` are the pre-dropout attention probabilities (not
    differentiable; returned for inspection).
    """

    @staticmethod
    def forward(ctx, q, k_, v, kern, ksize: int, dropout_p: float):
        m, n, dh = q.shape
        pad_scale, neg_future = _masks(n, ksize, 1.0 / math.sqrt(dh), q)
        c = ksize // 2
        out = torch.empty_like(q)
        padded_all = q.new_empty(m, n + ksize - 1, n + 2 * c)
        probs = q.new_empty(m, n, n)
        keep = (torch.empty(m, n, n, dtype=torch.bool, device=q.device)
                if dropout_p > 0 else None)
        step = _chunk(m, n)
        conv_buf = _scratch("conv", (step, n, n), q)
        for s0 in range(0, m, step):
            sl = slice(s0, s0 + step)
            mc = min(step, m - s0)
            padded = _padded_scores(q[sl], k_[sl], ksize, pad_scale, out=padded_all[sl])
            conv = _conv_masked(padded, kern[sl], ksize, neg_future, out=conv_buf[:mc])
            # Softmax written straight into the saved probabilities (no extra copy).
            p = torch.ops.aten._softmax.out(conv, -1, False, out=probs[sl])
            if keep is not None:
                keep[sl] = torch.rand_like(p) >= dropout_p
                p = p.masked_fill(~keep[sl], 0.0).mul_(1.0 / (1.0 - dropout_p))  # not in place
            torch.bmm(p, v[sl], out=out[sl])
        ctx.save_for_backward(q, k_, v, kern, padded_all, probs,
                              *(() if keep is None else (keep,)))
        ctx.ksize, ctx.dropout_p = ksize, dropout_p
        ctx.mark_non_differentiable(probs)
        return out, probs

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out, _g_probs):
        q, k_, v, kern, padded_all, probs, *rest = ctx.saved_tensors
        keep = rest[0] if rest else None
        ksize, p_drop = ctx.ksize, ctx.dropout_p
        m, n, dh = q.shape
        c = ksize // 2
        pad_scale, _ = _masks(n, ksize, 1.0 / math.sqrt(dh), q)
        core_scale = pad_scale[ksize - 1:, c: c + n]  # (L, L): scale on/below the diagonal
        g_out = g_out.contiguous()
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k_), torch.empty_like(v)
        dkern = torch.empty_like(kern)
        step = _chunk(m, n)
        bufs = {name: _scratch(name, (step, *shape), q) for name, shape in
                (("dp", (n, n)), ("dc", (n, n)), ("ds", (n, n)), ("prod", (n, n)),
                 ("dpad", (n + ksize - 1, n + 2 * c)))}
        for s0 in range(0, m, step):
            sl = slice(s0, s0 + step)
            mc = min(step, m - s0)
            dp_b, dc_b, ds_b, prod, dpad = (bufs[x][:mc]
                                            for x in ("dp", "dc", "ds", "prod", "dpad"))
            p, padded, kk, go = probs[sl], padded_all[sl], kern[sl], g_out[sl]
            dp = torch.bmm(go, v[sl].transpose(-1, -2), out=dp_b)  # wrt the dropped probs
            if keep is not None:
                inv = 1.0 / (1.0 - p_drop)
                torch.bmm(p.masked_fill(~keep[sl], 0.0).mul_(inv).transpose(-1, -2), go,
                          out=dv[sl])
                dp.masked_fill_(~keep[sl], 0.0).mul_(inv)
            else:
                torch.bmm(p.transpose(-1, -2), go, out=dv[sl])
            # Softmax backward, one fused pass: dC = P * (dP - sum_j dP * P).
            dc = torch.ops.aten._softmax_backward_data.out(dp, p, -1, p.dtype,
                                                            grad_input=dc_b)
            # Convolution backward: the kernel taps, and the padded score map.
            dpad.zero_()
            weights = kk.unsqueeze(-2).unbind(-1)
            dkc = dkern[sl]
            for t, (win, dwin) in enumerate(zip(_tap_views(padded, ksize, n),
                                                _tap_views(dpad, ksize, n), strict=True)):
                # dK[i, t] = sum_j dC[i, j] * window_t[i, j]; the product goes to scratch
                # (a fresh temporary per tap costs more in page faults than the math).
                torch.sum(torch.mul(dc, win, out=prod), dim=-1, out=dkc[:, :, t])
                dwin.addcmul_(dc, weights[t])
            # Back through the scale and the zeroed future (padding gradients are dropped),
            # then the score bmm.
            ds = torch.mul(dpad[:, ksize - 1:, c: c + n], core_scale, out=ds_b)
            torch.bmm(ds, k_[sl], out=dq[sl])
            torch.bmm(ds.transpose(-1, -2), q[sl], out=dk[sl])
        return dq, dk, dv, dkern, None, None


def fused_context_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                            kernels: torch.Tensor, kernel_size: int,
                            dropout_p: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Context attention on (B, H, L, dh) q, k, v and (B, H, L, k*k) kernels.

    Returns out (B, H, L, dh) and the pre-dropout attention probabilities (B, H, L, L)
    (a view of a saved tensor: read it, don't modify it).
    """
    b, h, n, dh = q.shape
    flat = [t.reshape(b * h, n, -1).contiguous() for t in (q, k, v, kernels)]
    out, probs = ContextAttentionFn.apply(*flat, kernel_size, float(dropout_p))
    return out.view(b, h, n, dh), probs.view(b, h, n, n)

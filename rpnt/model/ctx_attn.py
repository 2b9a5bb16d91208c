"""Fused, chunked kernel of strictly causal context-based attention (forward + backward).

Math (per sample-head map, L queries and keys, c = k // 2)::

    S  = q k^T / sqrt(dh), with S[i, j] = 0 for j > i            (future scores zeroed)
    C[i, j] = sum_{a, b < k} K[i, a*k + b] * S[i - a, j + b - c]  (0 outside the map)
    P  = softmax_j(C with C[i, j] = -inf for j > i)
    out = dropout(P) v

How, and why so:

* **Chunks.** Sample-head maps are processed a chunk at a time, so the k*k shifted,
  weighted adds of the convolution run on (L, L) maps that are still in cache, in a few
  reusable scratch buffers: fresh large temporaries cost more in page faults than the
  arithmetic, and every pass over a map that has left the cache costs a trip to memory.
* **Two backward paths, chosen by size.** Small maps (B*H*L*L scores and
  probabilities, together <= ``KEEP_MAPS_BYTES``) are kept for the backward. Larger ones
  are not kept at all (flash-attention style): the backward recomputes each chunk's
  scores, convolution and softmax from q, k and the kernels, which costs one more score
  ``bmm`` and k*k adds per map but writes no (B, H, L, L) tensor to memory (at T = 200,
  40 MB each, which the OS maps afresh, page fault by page fault, on every call).
  Dropout regenerates its mask from a seed drawn from the global generator, so neither
  path keeps a mask.
* **No padding.** Tap (a, b) adds a shifted sub-rectangle of S into C (the part that
  lies inside the map), so no padded copy of q, k or S exists; the 1/sqrt(dh) scale is
  folded into the (L, k*k) kernel weights rather than applied to the map.
* **Only the future scores a causal output reads are zeroed.** An output C[i, j] with
  j <= i reads S[i', j'] with j' - i' <= 3c, so zeroing the 3c superdiagonals of S is
  enough; outputs j > i read anything, and the -inf mask (added with the first tap)
  overrides them.
"""

from __future__ import annotations

import functools
import math

import torch
from torch.autograd.function import once_differentiable

#: Target bytes of one chunk's (n_maps, L, L) float32 map: chunks of a few maps keep the
#: maps a chunk works on in cache; much smaller chunks cost more in per-op overhead.
CHUNK_BYTES = 1 << 21

#: Largest total size of the saved (M, L, L) scores and probabilities: above it the
#: backward recomputes them chunk by chunk instead (one more score bmm, k*k more adds).
KEEP_MAPS_BYTES = 32 << 20

#: Reused per-chunk scratch maps, keyed by (name, shape, dtype, device).
_SCRATCH: dict[tuple, torch.Tensor] = {}


def _scratch(name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """A reusable, uninitialised buffer (every user writes it before reading it)."""
    key = (name, shape, like.dtype, like.device)
    buf = _SCRATCH.get(key)
    if buf is None:
        if len(_SCRATCH) > 64:  # many shapes seen (e.g. varying lengths): start over
            _SCRATCH.clear()
        buf = _SCRATCH[key] = like.new_empty(shape)
    return buf


def _keeps_maps(n_maps: int, length: int, like: torch.Tensor) -> bool:
    """Keep the scores and probabilities for the backward (else recompute them)?"""
    return 2 * n_maps * length * length * like.element_size() <= KEEP_MAPS_BYTES


def _chunk(n_maps: int, length: int) -> int:
    """Maps per chunk: as many as fit ``CHUNK_BYTES``, spread evenly over the chunks."""
    n_chunks = -(-n_maps * length * length * 4 // CHUNK_BYTES)
    return max(1, -(-n_maps // max(1, n_chunks)))


def _neg_future(n: int, like: torch.Tensor) -> torch.Tensor:
    """(L, L): 0 on and below the diagonal, -inf above it (cached; never written to)."""
    key = ("neg_future", n, like.dtype, like.device)
    if key not in _SCRATCH:
        _SCRATCH[key] = like.new_zeros(n, n).masked_fill_(
            torch.ones(n, n, dtype=torch.bool, device=like.device).triu(1), float("-inf"))
    return _SCRATCH[key]


@functools.lru_cache(maxsize=64)
def _taps(ksize: int, n: int) -> tuple[tuple[int, int, int, int, int, int], ...]:
    """Per tap ``t = a*k + b``, the rectangle it adds: (t, a, r0, c0, nr, nc).

    Tap t adds ``K[i, t] * S[i - a, j + d]`` (d = b - c) to ``C[i, j]`` for the ``nr``
    rows ``i >= r0 = a`` and the ``nc`` columns ``j >= c0`` whose ``j + d`` lies inside
    the map. The centre tap (a = 0, b = c) covers the whole map and comes first, so it
    can initialise C. Taps with ``a >= n`` touch nothing and are left out.
    """
    c = ksize // 2
    order = [c] + [t for t in range(ksize * ksize) if t != c]
    taps = []
    for t in order:
        a, d = t // ksize, t % ksize - c
        c0, c1 = max(0, -d), min(n, n - d)
        if a < n:
            taps.append((t, a, a, c0, n - a, c1 - c0))
    return tuple(taps)


def _rect(x: torch.Tensor, r0: int, c0: int, nr: int, nc: int) -> torch.Tensor:
    """``x[:, r0:r0+nr, c0:c0+nc]`` of a (M, R, C) tensor as one view op (slicing makes three)."""
    st = x.stride()
    return x.as_strided((x.shape[0], nr, nc), st, x.storage_offset() + r0 * st[1] + c0 * st[2])


def _zero_read_future(s: torch.Tensor, ksize: int) -> None:
    """Zero S[i, i+s] for 1 <= s <= 3c: the future scores that causal outputs read."""
    for off in range(1, min(3 * (ksize // 2), s.shape[-1] - 1) + 1):
        s.diagonal(off, -2, -1).zero_()


def _probs(q: torch.Tensor, k_: torch.Tensor, w: torch.Tensor, ksize: int,
           s: torch.Tensor, conv: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Scores into ``s``, convolved and masked into ``conv``, softmax into ``out``.

    q, k_ (M, L, dh); w (M, L, k*k) kernels times the 1/sqrt(dh) scale; s, conv and
    out (M, L, L) buffers. Returns ``out`` (the probabilities).
    """
    n = q.shape[1]
    torch.bmm(q, k_.transpose(-1, -2), out=s)
    _zero_read_future(s, ksize)
    for idx, (t, a, r0, c0, nr, nc) in enumerate(_taps(ksize, n)):
        if idx == 0:  # the centre tap covers the map; the -inf mask rides along
            torch.addcmul(_neg_future(n, q), s, _rect(w, 0, t, n, 1), out=conv)
        else:
            d = t % ksize - ksize // 2
            _rect(conv, r0, c0, nr, nc).addcmul_(_rect(s, r0 - a, c0 + d, nr, nc),
                                                _rect(w, r0, t, nr, 1))
    # Not in place: the CPU softmax kernels are much slower in place.
    return torch.ops.aten._softmax.out(conv, -1, False, out=out)


def _dropout_keep(shape: tuple[int, ...], p_drop: float, gen: torch.Generator,
                  buf: torch.Tensor) -> torch.Tensor:
    """1 / (1 - p) where kept, 0 where dropped, into ``buf`` (same draws for the same gen)."""
    torch.rand(shape, generator=gen, dtype=buf.dtype, device=buf.device, out=buf)
    return buf.ge_(p_drop).mul_(1.0 / (1.0 - p_drop))


def _generator(seed: int, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


class ContextAttentionFn(torch.autograd.Function):
    """q, k, v (M, L, dh), kernels (M, L, k*k) -> out (M, L, dh), probs.

    M = batch * heads. ``probs`` are the pre-dropout attention probabilities (M, L, L)
    when ``need_weights`` (not differentiable), else an empty tensor.
    """

    @staticmethod
    def forward(ctx, q, k_, v, kern, ksize: int, dropout_p: float, need_weights: bool):
        m, n, dh = q.shape
        w = kern * (1.0 / math.sqrt(dh))
        out = torch.empty_like(q)
        keep_maps = _keeps_maps(m, n, q)
        if keep_maps:
            s_all, p_all = q.new_empty(m, n, n), q.new_empty(m, n, n)
        probs = q.new_empty((m, n, n) if need_weights and not keep_maps else (0,))
        seed = int(torch.randint(2**62, ())) if dropout_p > 0 else 0
        gen = _generator(seed, q.device) if dropout_p > 0 else None
        step = _chunk(m, n)
        bufs = {name: _scratch(name, (step, n, n), q) for name in ("s", "conv", "p", "keep")}
        for s0 in range(0, m, step):
            sl, mc = slice(s0, s0 + step), min(step, m - s0)
            s_, p_ = ((s_all[sl], p_all[sl]) if keep_maps
                      else (bufs["s"][:mc], bufs["p"][:mc]))
            p = _probs(q[sl], k_[sl], w[sl], ksize, s_, bufs["conv"][:mc], p_)
            if need_weights and not keep_maps:
                probs[sl].copy_(p)
            if gen is not None:
                p = _dropout_keep(p.shape, dropout_p, gen, bufs["keep"][:mc]).mul_(p)
            torch.bmm(p, v[sl], out=out[sl])
        if keep_maps:
            ctx.save_for_backward(q, k_, v, w, s_all, p_all)
            if need_weights:
                probs = p_all
        else:
            ctx.save_for_backward(q, k_, v, w)
        ctx.ksize, ctx.dropout_p, ctx.seed = ksize, dropout_p, seed
        ctx.mark_non_differentiable(probs)
        return out, probs

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out, _g_probs):
        q, k_, v, w, *maps = ctx.saved_tensors
        ksize, p_drop = ctx.ksize, ctx.dropout_p
        m, n, dh = q.shape
        g_out = g_out.contiguous()
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k_), torch.empty_like(v)
        dkern = torch.zeros_like(w)  # rows i < a of tap (a, b) stay 0
        gen = _generator(ctx.seed, q.device) if p_drop > 0 else None
        step = _chunk(m, n)
        bufs = {name: _scratch(name, (step, n, n), q)
                for name in ("s", "conv", "p", "keep", "dp", "ds", "prod")}
        taps = _taps(ksize, n)
        for s0 in range(0, m, step):
            sl, mc = slice(s0, s0 + step), min(step, m - s0)
            wc, go, dkc = w[sl], g_out[sl], dkern[sl]
            b = {name: buf[:mc] for name, buf in bufs.items()}
            if maps:
                s, p = maps[0][sl], maps[1][sl]
            else:  # recompute this chunk's scores and probabilities
                s = b["s"]
                p = _probs(q[sl], k_[sl], wc, ksize, s, b["conv"], b["p"])
            dp = torch.bmm(go, v[sl].transpose(-1, -2), out=b["dp"])  # wrt dropped P
            if gen is not None:
                keep = _dropout_keep(p.shape, p_drop, gen, b["keep"])
                torch.bmm(torch.mul(p, keep, out=b["prod"]).transpose(-1, -2), go,
                          out=dv[sl])
                dp.mul_(keep)
            else:
                torch.bmm(p.transpose(-1, -2), go, out=dv[sl])
            # Softmax backward: dC = P * (dP - sum_j dP * P) (not in place: slower).
            dc = torch.ops.aten._softmax_backward_data.out(dp, p, -1, p.dtype,
                                                            grad_input=b["conv"])
            # Convolution backward: dS (transposed taps) and the kernel taps.
            ds, prod = b["ds"], b["prod"]
            for idx, (t, a, r0, c0, nr, nc) in enumerate(taps):
                d = t % ksize - ksize // 2
                dc_t, wt = _rect(dc, r0, c0, nr, nc), _rect(wc, r0, t, nr, 1)
                s_t = _rect(s, r0 - a, c0 + d, nr, nc)  # where S is read, dS is written
                if idx == 0:
                    torch.mul(dc, wt, out=ds)
                else:
                    _rect(ds, r0 - a, c0 + d, nr, nc).addcmul_(dc_t, wt)
                # dK[i, t] = sum_j dC[i, j] * S[i - a, j + d]; the product goes to
                # scratch (a fresh temporary per tap costs more than the math).
                pr = torch.mul(dc_t, s_t, out=_rect(prod, 0, 0, nr, nc))
                torch.sum(pr, dim=-1, out=_rect(dkc, r0, t, nr, 1).squeeze(-1))
            _zero_read_future(ds, ksize)  # zeroed scores pass no gradient
            torch.bmm(ds, k_[sl], out=dq[sl])
            torch.bmm(ds.transpose(-1, -2), q[sl], out=dk[sl])
        # w = kernels / sqrt(dh) carries the scale of the scores: dq, dk need none.
        return dq, dk, dv, dkern.mul_(1.0 / math.sqrt(dh)), None, None, None


def fused_context_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                            kernels: torch.Tensor, kernel_size: int, dropout_p: float = 0.0,
                            need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Context attention on (B, H, L, dh) q, k, v and (B, H, L, k*k) kernels.

    Returns out (B, H, L, dh) and, if ``need_weights``, the pre-dropout attention
    probabilities (B, H, L, L) (possibly the tensor kept for the backward: read it, don't
    modify it), else None. Kept for the backward: q, k, v, the kernels and, for small
    maps only, the scores and probabilities (see the module docstring).
    """
    b, h, n, dh = q.shape
    flat = [t.reshape(b * h, n, -1).contiguous() for t in (q, k, v, kernels)]
    out, probs = ContextAttentionFn.apply(*flat, kernel_size, float(dropout_p),
                                          bool(need_weights))
    return out.view(b, h, n, dh), (probs.view(b, h, n, n) if need_weights else None)

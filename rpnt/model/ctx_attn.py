"""Fused, chunked kernel of strictly causal context-based attention (forward + backward).

Math (per sample-head map, L queries and keys, c = k // 2)::

    S  = q k^T / sqrt(dh), with S[i, j] = 0 for j > i            (future scores zeroed)
    C[i, j] = sum_{a, b < k} K[i, a*k + b] * S[i - a, j + b - c]  (0 outside the map)
    P  = softmax_j(C with C[i, j] = -inf for j > i)
    out = dropout(P) v

How, and why so:

* **Chunks.** Sample-head maps are processed a chunk at a time, so the k*k shifted,
  weighted adds of the convolution run on maps that are still in cache, in a few
  reusable scratch buffers: fresh large temporaries cost more in page faults than the
  arithmetic, and every pass over a map that has left the cache costs a trip to memory.
* **Causal row blocks.** Long maps are split into blocks of query rows [r0, r1); a
  block only needs keys < r1 (the rest is masked), and the scores of rows
  [r0 - (k-1), r1) (its taps reach k-1 rows up). With B blocks this computes about
  (B+1)/(2B) of the map instead of all of it (T = 200, 4 blocks: 62 %). The backward
  hands the score gradient of the k-1 shared rows on to the block above.
* **Two backward paths, chosen by size.** Small maps (scores and probabilities,
  together <= ``KEEP_MAPS_BYTES``) are kept for the backward. Larger ones are not kept
  at all (flash-attention style): the backward recomputes each chunk's scores,
  convolution and softmax from q, k and the kernels, which costs one more score ``bmm``
  and k*k adds per map but writes no (B, H, L, L)-sized tensor to memory (at T = 200,
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
import itertools
import math
import threading

import torch
from torch.autograd.function import once_differentiable

from rpnt.model.dropout import keep_threshold

#: Target bytes of one chunk's block map (n_maps, rows, keys) in float32: chunks of a few
#: maps keep what a chunk works on in cache; much smaller ones cost more in per-op
#: overhead than they gain.
CHUNK_BYTES = 2 << 20

#: Query rows per causal row block (maps up to this length are one block).
ROW_BLOCK = 64

#: Largest total size of the kept scores and probabilities: above it the backward
#: recomputes them chunk by chunk instead (one more score bmm, k*k more adds).
KEEP_MAPS_BYTES = 32 << 20

#: Reused per-chunk scratch buffers, keyed by (name, dtype, device, thread): one set per
#: calling thread, so that concurrent calls from two threads never share a buffer.
_SCRATCH: dict[tuple, torch.Tensor] = {}

Block = tuple[int, int, int]  # (r0, r1, lo): query rows [r0, r1), score rows [lo, r1)


def _scratch(name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """A reusable, uninitialised contiguous buffer of ``shape`` (users write before reading).

    Buffers are kept flat by name and grown when needed, so the differently shaped maps
    of the row blocks share them.
    """
    numel = math.prod(shape)
    key = (name, like.dtype, like.device, threading.get_ident())
    buf = _SCRATCH.get(key)
    if buf is None or buf.numel() < numel:
        if len(_SCRATCH) > 64:  # many dtypes / devices seen: start over
            _SCRATCH.clear()
        buf = _SCRATCH[key] = like.new_empty(numel)
    return buf[:numel].view(shape)


@functools.lru_cache(maxsize=64)
def _blocks(n: int, ksize: int) -> tuple[Block, ...]:
    """Causal row blocks of an (n, n) map: about ``ROW_BLOCK`` rows each, >= k-1 rows."""
    nb = max(1, -(-n // ROW_BLOCK))
    if n // nb < ksize - 1:  # a block's shared rows must lie inside the block above
        nb = 1
    edges = [round(i * n / nb) for i in range(nb + 1)]
    return tuple((r0, r1, max(0, r0 - (ksize - 1))) for r0, r1 in itertools.pairwise(edges))


def _keeps_maps(n_maps: int, blocks: tuple[Block, ...], like: torch.Tensor) -> bool:
    """Keep the scores and probabilities for the backward (else recompute them)?"""
    per_map = sum(((r1 - lo) + (r1 - r0)) * r1 for r0, r1, lo in blocks)
    return n_maps * per_map * like.element_size() <= KEEP_MAPS_BYTES


def _chunk(n_maps: int, blocks: tuple[Block, ...]) -> int:
    """Maps per chunk: as many as fit ``CHUNK_BYTES``, spread evenly over the chunks."""
    per_map = 4 * max((r1 - lo) * r1 for r0, r1, lo in blocks)
    n_chunks = -(-n_maps * per_map // CHUNK_BYTES)
    return max(1, -(-n_maps // max(1, n_chunks)))


def _neg_future(n: int, like: torch.Tensor) -> torch.Tensor:
    """(L, L): 0 on and below the diagonal, -inf above it (cached; never written to)."""
    key = ("neg_future", n, like.dtype, like.device)
    if key not in _SCRATCH:
        _SCRATCH[key] = like.new_zeros(n, n).masked_fill_(
            torch.ones(n, n, dtype=torch.bool, device=like.device).triu(1), float("-inf"))
    return _SCRATCH[key]


@functools.lru_cache(maxsize=256)
def _taps(ksize: int, rows: int, keys: int,
          off: int) -> tuple[tuple[int, int, int, int, int, int, int], ...]:
    """The rectangle each tap adds in a block: (t, i0, j0, nr, nc, si0, sj0).

    The block's C has ``rows`` query rows and ``keys`` columns; its S starts ``off`` rows
    above its first query row. Tap ``t = a*k + b`` adds ``K[i, t] * S[i - a, j + d]``
    (d = b - c) to the ``nr`` x ``nc`` rectangle of C at (i0, j0) from the one of S at
    (si0, sj0): the rows whose ``i - a`` and columns whose ``j + d`` lie inside S (reads
    past column ``keys`` would be future scores, which are 0). The centre tap (a = 0,
    b = c) covers all of C and comes first, so it can initialise C.
    """
    c = ksize // 2
    taps = []
    for t in [c] + [t for t in range(ksize * ksize) if t != c]:
        a, d = t // ksize, t % ksize - c
        i0, j0, j1 = max(0, a - off), max(0, -d), min(keys, keys - d)
        if i0 < rows and j0 < j1:
            taps.append((t, i0, j0, rows - i0, j1 - j0, i0 + off - a, j0 + d))
    return tuple(taps)


def _rect(x: torch.Tensor, r0: int, c0: int, nr: int, nc: int) -> torch.Tensor:
    """``x[:, r0:r0+nr, c0:c0+nc]`` of an (M, R, C) tensor as one view op (slicing makes three)."""
    st = x.stride()
    return x.as_strided((x.shape[0], nr, nc), st, x.storage_offset() + r0 * st[1] + c0 * st[2])


def _zero_read_future(s: torch.Tensor, ksize: int, lo: int) -> None:
    """Zero S[i', i'+s] for 1 <= s <= 3c, where row 0 of ``s`` is score row ``lo``: the
    future scores that causal outputs read."""
    for off in range(1, 3 * (ksize // 2) + 1):
        if lo + off < s.shape[-1]:
            s.diagonal(lo + off, -2, -1).zero_()


def _block_probs(q: torch.Tensor, k_: torch.Tensor, w: torch.Tensor, ksize: int, blk: Block,
                 s: torch.Tensor, conv: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """One block's scores into ``s``, convolved and masked into ``conv``, softmax into ``out``.

    q, k_ (M, L, dh) and w (M, L, k*k) (kernels times 1/sqrt(dh)) of a chunk; s
    (M, r1 - lo, r1), conv and out (M, r1 - r0, r1) buffers. Returns ``out``.
    """
    r0, r1, lo = blk
    rows, off = r1 - r0, r0 - lo
    torch.bmm(q[:, lo:r1], k_[:, :r1].transpose(-1, -2), out=s)
    _zero_read_future(s, ksize, lo)
    for idx, (t, i0, j0, nr, nc, si0, sj0) in enumerate(_taps(ksize, rows, r1, off)):
        if idx == 0:  # the centre tap covers C; the -inf mask rides along
            torch.addcmul(_neg_future(q.shape[1], q)[r0:r1, :r1], _rect(s, off, 0, rows, r1),
                          _rect(w, r0, t, rows, 1), out=conv)
        else:
            _rect(conv, i0, j0, nr, nc).addcmul_(_rect(s, si0, sj0, nr, nc),
                                                _rect(w, r0 + i0, t, nr, 1))
    # Not in place: the CPU softmax kernels are much slower in place.
    return torch.ops.aten._softmax.out(conv, -1, False, out=out)


def _dropout_keep(shape: tuple[int, ...], p_drop: float, gen: torch.Generator,
                  buf: torch.Tensor) -> torch.Tensor:
    """1 / (1 - p) where kept, 0 where dropped, into ``buf`` (same draws for the same gen):
    four 16-bit lanes per 64-bit draw, as :mod:`rpnt.model.dropout` does."""
    n = math.prod(shape)
    words = _scratch("words", (-(-n // 4),), buf.new_empty(0, dtype=torch.int64))
    words.random_(-(2**63), 2**63 - 1, generator=gen)
    threshold, scale = keep_threshold(p_drop)
    return buf.copy_(words.view(torch.int16)[:n].view(shape).ge(threshold)).mul_(scale)


def _generators(seed: int, n_blocks: int, device: torch.device) -> list[torch.Generator]:
    """One generator per row block, so that the forward (blocks top down) and the
    backward (bottom up) draw each block's masks in the same order."""
    gens = []
    for b in range(n_blocks):
        gen = torch.Generator(device=device)
        gen.manual_seed(seed + b)
        gens.append(gen)
    return gens


class ContextAttentionFn(torch.autograd.Function):
    """q, k, v (M, L, dh), kernels (M, L, k*k) -> out (M, L, dh), probs.

    M = batch * heads. ``probs`` are the pre-dropout attention probabilities (M, L, L)
    when ``need_weights`` (not differentiable), else an empty tensor.
    """

    @staticmethod
    def forward(ctx, q, k_, v, kern, ksize: int, dropout_p: float, need_weights: bool):
        m, n, dh = q.shape
        blocks = _blocks(n, ksize)
        one = len(blocks) == 1
        w = kern * (1.0 / math.sqrt(dh))
        out = torch.empty_like(q)
        keep = _keeps_maps(m, blocks, q)
        kept = ([(q.new_empty(m, r1 - lo, r1), q.new_empty(m, r1 - r0, r1))
                 for r0, r1, lo in blocks] if keep else [])
        whole = keep and one and need_weights  # the kept probabilities are the answer
        probs = q.new_zeros((m, n, n) if need_weights and not whole else (0,))
        seed = int(torch.randint(2**62, ())) if dropout_p > 0 else 0
        gens = _generators(seed, len(blocks), q.device) if dropout_p > 0 else None
        step = _chunk(m, blocks)
        for s0 in range(0, m, step):
            sl, mc = slice(s0, s0 + step), min(step, m - s0)
            for bi, blk in enumerate(blocks):
                r0, r1, lo = blk
                rows = r1 - r0
                s_, p_ = (kept[bi][0][sl], kept[bi][1][sl]) if keep else (
                    _scratch("s", (mc, r1 - lo, r1), q), _scratch("p", (mc, rows, r1), q))
                p = _block_probs(q[sl], k_[sl], w[sl], ksize, blk, s_,
                                 _scratch("conv", (mc, rows, r1), q), p_)
                if need_weights and not whole:
                    probs[sl, r0:r1, :r1].copy_(p)
                if gens is not None:
                    p = _dropout_keep(p.shape, dropout_p, gens[bi],
                                      _scratch("keep", (mc, rows, r1), q)).mul_(p)
                if one:
                    torch.bmm(p, v[sl], out=out[sl])
                else:  # bmm into a strided output is slow: go through scratch
                    out[sl, r0:r1].copy_(torch.bmm(p, v[sl, :r1],
                                                   out=_scratch("o", (mc, rows, dh), q)))
        ctx.save_for_backward(q, k_, v, w, *(t for pair in kept for t in pair))
        ctx.ksize, ctx.dropout_p, ctx.seed = ksize, dropout_p, seed
        if whole:
            probs = kept[0][1]
        ctx.mark_non_differentiable(probs)
        return out, probs

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out, _g_probs):
        q, k_, v, w, *kept = ctx.saved_tensors
        ksize, p_drop = ctx.ksize, ctx.dropout_p
        m, n, dh = q.shape
        blocks = _blocks(n, ksize)
        g_out = g_out.contiguous()
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k_), torch.empty_like(v)
        dkern = torch.zeros_like(w)  # rows i < a of tap (a, b) stay 0
        gens = _generators(ctx.seed, len(blocks), q.device) if p_drop > 0 else None
        step = _chunk(m, blocks)
        for s0 in range(0, m, step):
            sl, mc = slice(s0, s0 + step), min(step, m - s0)
            qc, kc, vc, wc, go = q[sl], k_[sl], v[sl], w[sl], g_out[sl]
            dqc, dkc, dvc, dkernc = dq[sl], dk[sl], dv[sl], dkern[sl]
            carry = None  # score gradient of the rows this block shares with the one above
            for bi in reversed(range(len(blocks))):
                r0, r1, lo = blocks[bi]
                rows, off, last = r1 - r0, r0 - lo, bi == len(blocks) - 1
                if kept:
                    s, p = kept[2 * bi][sl], kept[2 * bi + 1][sl]
                else:  # recompute this block's scores and probabilities
                    s = _scratch("s", (mc, r1 - lo, r1), q)
                    p = _block_probs(qc, kc, wc, ksize, blocks[bi], s,
                                     _scratch("conv", (mc, rows, r1), q),
                                     _scratch("p", (mc, rows, r1), q))
                go_b = go[:, r0:r1]
                dp = torch.bmm(go_b, vc[:, :r1].transpose(-1, -2),
                               out=_scratch("dp", (mc, rows, r1), q))  # wrt dropped P
                p_v = p
                if gens is not None:
                    keep = _dropout_keep(p.shape, p_drop, gens[bi],
                                         _scratch("keep", (mc, rows, r1), q))
                    p_v = torch.mul(p, keep, out=_scratch("prod", (mc, rows, r1), q))
                    dp.mul_(keep)
                if last:  # the last block reaches every key: it writes dv, dk
                    torch.bmm(p_v.transpose(-1, -2), go_b, out=dvc)
                else:
                    dvc[:, :r1].add_(torch.bmm(p_v.transpose(-1, -2), go_b,
                                               out=_scratch("o", (mc, r1, dh), q)))
                # Softmax backward: dC = P * (dP - sum_j dP * P) (not in place: slower).
                dc = torch.ops.aten._softmax_backward_data.out(
                    dp, p, -1, p.dtype, grad_input=_scratch("conv", (mc, rows, r1), q))
                # Convolution backward: dS (transposed taps) and the kernel taps.
                ds = _scratch("ds", (mc, r1 - lo, r1), q)
                prod = _scratch("prod", (mc, rows, r1), q)
                if off:
                    _rect(ds, 0, 0, off, r1).zero_()  # rows above the block: no centre tap
                for idx, (t, i0, j0, nr, nc, si0, sj0) in enumerate(
                        _taps(ksize, rows, r1, off)):
                    dc_t, wt = _rect(dc, i0, j0, nr, nc), _rect(wc, r0 + i0, t, nr, 1)
                    if idx == 0:
                        torch.mul(dc, wt, out=_rect(ds, off, 0, rows, r1))
                    else:
                        _rect(ds, si0, sj0, nr, nc).addcmul_(dc_t, wt)
                    # dK[i, t] = sum_j dC[i, j] * S[i - a, j + d]; the product goes to
                    # scratch (a fresh temporary per tap costs more than the math).
                    pr = torch.mul(dc_t, _rect(s, si0, sj0, nr, nc),
                                   out=_rect(prod, 0, 0, nr, nc))
                    torch.sum(pr, dim=-1, out=_rect(dkernc, r0 + i0, t, nr, 1).squeeze(-1))
                if carry is not None:  # the block below read this block's last rows
                    _rect(ds, r1 - lo - carry.shape[1], 0, carry.shape[1], r1).add_(carry)
                _zero_read_future(ds, ksize, lo)  # zeroed scores pass no gradient
                if off:  # hand rows [lo, r0) on; columns >= r0 are future there (0)
                    carry = _scratch("carry", (mc, off, r0), q)
                    carry.copy_(_rect(ds, 0, 0, off, r0))
                own = _rect(ds, off, 0, rows, r1)
                if len(blocks) == 1:
                    torch.bmm(own, kc, out=dqc)
                else:
                    dqc[:, r0:r1].copy_(torch.bmm(own, kc[:, :r1],
                                                  out=_scratch("o", (mc, rows, dh), q)))
                if last:
                    torch.bmm(own.transpose(-1, -2), qc[:, r0:r1], out=dkc)
                else:
                    dkc[:, :r1].add_(torch.bmm(own.transpose(-1, -2), qc[:, r0:r1],
                                               out=_scratch("o", (mc, r1, dh), q)))
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

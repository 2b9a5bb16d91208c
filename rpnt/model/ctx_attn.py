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
for backward: q, k, v, the kernels, the probabilities (one (B*H, L, L) map, as any
attention that materialises its scores) and, with dropout, a 1-byte keep mask; the
backward recomputes each chunk's score map (one small bmm) instead of keeping them all.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: Target bytes of one chunk's (n_maps, L, L) float32 score maps: fits a core's L2 cache.
CHUNK_BYTES = 1 << 20


def _chunk(n_maps: int, length: int) -> int:
    return max(1, min(n_maps, CHUNK_BYTES // (4 * length * length)))


def _masks(n: int, k: int, scale: float, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Constants of one call.

    Returns ``pad_scale`` (L+k-1, L+2c): ``scale`` where the padded map holds a causal
    score (key <= query), else 0, and ``neg_future`` (L, L): 0 on/below the diagonal,
    -inf above it.
    """
    c = k // 2
    pad_scale = like.new_zeros(n + k - 1, n + 2 * c)
    pad_scale[k - 1:, c: c + n] = torch.ones(n, n, dtype=like.dtype, device=like.device).tril()
    pad_scale.mul_(scale)
    neg_future = like.new_zeros(n, n).masked_fill_(
        torch.ones(n, n, dtype=torch.bool, device=like.device).triu(1), float("-inf"))
    return pad_scale, neg_future


def _padded_scores(q: torch.Tensor, kk: torch.Tensor, k: int, pad_scale: torch.Tensor,
                   out: torch.Tensor) -> torch.Tensor:
    """(M, L+k-1, L+2c) scaled scores, zero above the diagonal and in the padding.

    q is zero-padded with k-1 rows on top and the keys with c rows on both sides, so one
    bmm writes the padded map directly (into ``out``, a contiguous chunk of the saved maps).
    """
    c = k // 2
    qp = F.pad(q, (0, 0, k - 1, 0))
    kp = F.pad(kk, (0, 0, c, c))
    return torch.bmm(qp, kp.transpose(-1, -2), out=out).mul_(pad_scale)


def _conv_masked(padded: torch.Tensor, kern: torch.Tensor, k: int,
                 neg_future: torch.Tensor) -> torch.Tensor:
    """Shifted weighted adds + causal mask: (M, L+k-1, L+2c), (M, L, k*k) -> (M, L, L)."""
    n = kern.shape[-2]
    out = None
    for a in range(k):
        r0 = k - 1 - a
        for b in range(k):
            sl = padded[:, r0: r0 + n, b: b + n]
            w = kern[:, :, a * k + b: a * k + b + 1]  # (M, L, 1): one weight per query row
            if out is None:
                out = torch.addcmul(neg_future, sl, w)  # the -inf mask rides on the first tap
            else:
                out.addcmul_(sl, w)
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
        step = _chunk(m, n)
        buf = q.new_empty(min(step, m), n + ksize - 1, n + 2 * c)  # one chunk of padded maps
        probs = q.new_empty(m, n, n)
        keep = (torch.empty(m, n, n, dtype=torch.bool, device=q.device)
                if dropout_p > 0 else None)
        for s0 in range(0, m, step):
            sl = slice(s0, s0 + step)
            padded = _padded_scores(q[sl], k_[sl], ksize, pad_scale, out=buf[: q[sl].shape[0]])
            # Softmax written straight into the saved probabilities (no extra copy).
            p = torch.ops.aten._softmax.out(_conv_masked(padded, kern[sl], ksize, neg_future),
                                            -1, False, out=probs[sl])
            if keep is not None:
                keep[sl] = torch.rand_like(p) >= dropout_p
                p = p.masked_fill(~keep[sl], 0.0).mul_(1.0 / (1.0 - dropout_p))  # not in place
            torch.bmm(p, v[sl], out=out[sl])
        ctx.save_for_backward(q, k_, v, kern, probs,
                              *(() if keep is None else (keep,)))
        ctx.ksize, ctx.dropout_p = ksize, dropout_p
        ctx.mark_non_differentiable(probs)
        return out, probs

    @staticmethod
    def backward(ctx, g_out, _g_probs):
        q, k_, v, kern, probs, *rest = ctx.saved_tensors
        keep = rest[0] if rest else None
        ksize, p_drop = ctx.ksize, ctx.dropout_p
        m, n, dh = q.shape
        c = ksize // 2
        pad_scale, _ = _masks(n, ksize, 1.0 / math.sqrt(dh), q)
        g_out = g_out.contiguous()
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k_), torch.empty_like(v)
        dkern = torch.empty_like(kern)
        step = _chunk(m, n)
        buf = q.new_empty(min(step, m), n + ksize - 1, n + 2 * c)
        for s0 in range(0, m, step):
            sl = slice(s0, s0 + step)
            p, kk, go = probs[sl], kern[sl], g_out[sl]
            # Recompute this chunk's padded scores (cheaper than keeping all of them).
            padded = _padded_scores(q[sl], k_[sl], ksize, pad_scale, out=buf[: p.shape[0]])
            dp = torch.bmm(go, v[sl].transpose(-1, -2))  # gradient wrt the dropped probs
            if keep is not None:
                inv = 1.0 / (1.0 - p_drop)
                dv[sl] = torch.bmm(p.masked_fill(~keep[sl], 0.0).mul_(inv).transpose(-1, -2), go)
                dp.masked_fill_(~keep[sl], 0.0).mul_(inv)
            else:
                dv[sl] = torch.bmm(p.transpose(-1, -2), go)
            # Softmax backward, one fused pass: dC = P * (dP - sum_j dP * P).
            dc = torch._softmax_backward_data(dp, p, -1, p.dtype)
            # Convolution backward: the kernel taps, and the padded score map.
            dpad = torch.zeros_like(padded)
            for a in range(ksize):
                r0 = ksize - 1 - a
                for b in range(ksize):
                    t = a * ksize + b
                    win = padded[:, r0: r0 + n, b: b + n]
                    dkern[sl, :, t] = torch.linalg.vecdot(dc, win, dim=-1)
                    dpad[:, r0: r0 + n, b: b + n].addcmul_(dc, kk[:, :, t: t + 1])
            # Back through the scale and the zeroed future/padding, then the padded bmm.
            ds = dpad.mul_(pad_scale)
            dqp = torch.bmm(ds, F.pad(k_[sl], (0, 0, c, c)))
            dkp = torch.bmm(ds.transpose(-1, -2), F.pad(q[sl], (0, 0, ksize - 1, 0)))
            dq[sl] = dqp[:, ksize - 1:]
            dk[sl] = dkp[:, c: c + n]
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

"""The arithmetic of the RPNT stream, shared by its step and its vectorised twin.

A trained block is read once (:func:`prepare_block`) into the few dense operands a
one-token step needs, so a step issues few, large operations:

* one fused input projection per block, ``h @ [Wq / sqrt(dh) | Wk | Wv | w_pool | W_sum1]``
  (weights stored transposed, contiguous, for ``addmm``): q, k, v and the kernel
  generator's per-token inputs in one matrix product; q carries the attention scale
  1 / sqrt(dh), so neither the scores nor the context kernels are scaled again;
* the context kernel's output rows permuted so its taps come out in the order of the
  cached query rows (oldest first), so no row is flipped per step;
* rotary attention as ``x * cos2 + swap(x) * sin2`` with cos / sin tables computed once
  (:func:`rotary_tables`), ``swap`` exchanging the two halves of each head.

The functions act on any number of queries: one per site in a stream step, a chunk of
bins in :meth:`rpnt.online.rpnt_stream.RPNTStream.offline`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rpnt.model.rope import RotaryEmbedding


@dataclass
class Prepared:
    """One transformer block's operands (``*_w`` transposed: (d_in, d_out))."""

    ln1: tuple[torch.Tensor, torch.Tensor, float]
    in_w: torch.Tensor  # (d, 3d [+ 1 + ctx]): q (scaled), k, v [, pool logit, summary 1]
    in_b: torch.Tensor
    out_w: torch.Tensor
    out_b: torch.Tensor
    ln2: tuple[torch.Tensor, torch.Tensor, float]
    fc1_w: torch.Tensor
    fc1_b: torch.Tensor
    fc2_w: torch.Tensor
    fc2_b: torch.Tensor
    heads: int
    sum2_w: torch.Tensor | None = None  # kernel generator (context attention only)
    sum2_b: torch.Tensor | None = None
    kern_w: torch.Tensor | None = None  # taps ordered (query row oldest first, column)
    kern_b: torch.Tensor | None = None


def linear_params(lin: torch.nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    """A Linear's weight transposed (d_in, d_out), contiguous, and a copy of its bias."""
    return lin.weight.detach().t().contiguous(), lin.bias.detach().clone()


def ln_params(norm: torch.nn.LayerNorm) -> tuple[torch.Tensor, torch.Tensor, float]:
    """A LayerNorm's weight, bias and eps."""
    return norm.weight.detach().clone(), norm.bias.detach().clone(), float(norm.eps)


@torch.no_grad()
def prepare_block(blk: torch.nn.Module, heads: int) -> Prepared:
    """The operands of a :class:`rpnt.model.encoder.Block` (see the module docstring)."""
    attn = blk.attn
    d = attn.qkv.weight.shape[1]
    scale = 1.0 / math.sqrt(d // heads)
    w, b = attn.qkv.weight.detach().clone(), attn.qkv.bias.detach().clone()
    w[:d] *= scale
    b[:d] *= scale
    parts_w, parts_b = [w], [b]
    extra: dict[str, torch.Tensor] = {}
    gen = attn.kernel_gen
    if gen is not None:
        s1 = gen.summary[0]
        parts_w += [gen.pool.weight.detach(), s1.weight.detach()]
        parts_b += [torch.zeros(1), s1.bias.detach()]
        extra["sum2_w"], extra["sum2_b"] = linear_params(gen.summary[2])
        k = attn.kernel_size
        # tap (a, b) reads the row of bin i - a; reorder to (k - 1 - a, b): oldest row first
        tap = torch.arange(k * k).view(k, k).flip(0).reshape(-1)
        rows = (torch.arange(heads)[:, None] * k * k + tap[None, :]).reshape(-1)
        kw, kb = linear_params(gen.to_kernel)
        extra["kern_w"], extra["kern_b"] = kw[:, rows].contiguous(), kb[rows].contiguous()
    mlp = blk.mlp
    fc1_w, fc1_b = linear_params(mlp[0])
    fc2_w, fc2_b = linear_params(mlp[3])
    out_w, out_b = linear_params(attn.out)
    return Prepared(ln1=ln_params(blk.norm1), in_w=torch.cat(parts_w).t().contiguous(),
                    in_b=torch.cat(parts_b), out_w=out_w, out_b=out_b, ln2=ln_params(blk.norm2),
                    fc1_w=fc1_w, fc1_b=fc1_b, fc2_w=fc2_w, fc2_b=fc2_b, heads=heads, **extra)


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """x (..., d_in) @ w (d_in, d_out) + b, as one addmm."""
    return torch.addmm(b, x.reshape(-1, x.shape[-1]), w).view(*x.shape[:-1], w.shape[1])


def layer_norm(x: torch.Tensor, ln: tuple[torch.Tensor, torch.Tensor, float]) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:], ln[0], ln[1], ln[2])


def rotary_tables(rotary: RotaryEmbedding | None,
                  pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """positions (..., n_coord) -> cos2, sin2 (..., 2, head_dim / 2) float32:
    [cos, cos] and [-sin, sin], so that rotation is ``x * cos2 + swap(x) * sin2``."""
    if rotary is None:
        return None
    ang = rotary.angles(pos)
    cos, sin = ang.cos().float(), ang.sin().float()
    return torch.stack([cos, cos], -2), torch.stack([-sin, sin], -2)


def rotate(x: torch.Tensor, tab: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
    """x (..., dh) rotated by tables (..., 2, dh / 2) that broadcast against it
    (:meth:`RotaryEmbedding.rotate` with precomputed cos / sin)."""
    if tab is None:
        return x
    xv = x.unflatten(-1, (2, x.shape[-1] // 2))
    return torch.addcmul(xv * tab[0], xv.flip(-2), tab[1]).flatten(-2)


def project(p: Prepared, h: torch.Tensor,
            tab: tuple[torch.Tensor, torch.Tensor] | None
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Normed tokens h (M, d) -> rotated q, k stacked (M, 2, H, dh), v (M, H, dh) and the
    kernel generator's inputs (M, 1 + ctx) [pool logit, summary] (None: standard).
    ``tab``: rotary tables (M, 1, 2, dh / 2)."""
    m, d = h.shape
    y = torch.addmm(p.in_b, h, p.in_w)
    qk = rotate(y[:, :2 * d].view(m, 2 * p.heads, -1), tab).view(m, 2, p.heads, -1)
    v = y[:, 2 * d:3 * d].view(m, p.heads, -1)
    if p.sum2_w is None:
        return qk, v, None
    summ = torch.addmm(p.sum2_b, F.gelu(y[:, 3 * d + 1:]), p.sum2_w)
    return qk, v, torch.cat([y[:, 3 * d:3 * d + 1], summ], dim=1)


def kernels(p: Prepared, g_view: torch.Tensor, neg: torch.Tensor | None,
            ksize: int) -> torch.Tensor:
    """g_view (M, V, 1 + ctx), neg (M or 1, V) or None (every column in the view) ->
    context kernels (M, H, k*k): the kernel generator pooled over each query's view."""
    pool = torch.softmax(g_view[..., 0] if neg is None else g_view[..., 0] + neg, dim=-1)
    summ = (pool[:, None, :] @ g_view[..., 1:])[:, 0]  # (M, ctx)
    return torch.addmm(p.kern_b, summ, p.kern_w).view(-1, p.heads, ksize * ksize).softmax(-1)


def span_attention(q_rows: torch.Tensor, k_ext: torch.Tensor, v_view: torch.Tensor,
                   kern: torch.Tensor | None, neg: torch.Tensor | None,
                   past: torch.Tensor | None,
                   ksize: int) -> torch.Tensor:
    """Attention of M queries over their views (the one kernel of stream and offline).

    Standard attention (kern None): q_rows (M, H, 1, dh) scaled queries, k_ext = keys of
    the view (M, H, V, dh). Context attention: q_rows (M, H, k, dh) the queries of bins
    i-k+1 .. i (oldest first); k_ext (M, H, V + 2c, dh) the view's keys with c = k // 2
    columns either side; ``past`` (k, V + 2c) is 1 where a row may read a column (inside
    the view, not after the row's own bin): the map is zeroed elsewhere, then the k x k
    kernel (M, H, k*k) is correlated over it with zero padding c, as over the last row
    of a window's score map. v_view (M, H, V, dh); neg (M or 1, V): 0, or -inf outside
    the view (None: every column is in the view). Returns (M, H, dh).
    """
    s = q_rows @ k_ext.transpose(-1, -2)  # (M, H, k, E)
    if kern is not None:
        s = s * past
        m, h, k, e = s.shape
        v = e - 2 * (ksize // 2)
        # t[b, u'] = sum_a K[a, b] s[a, u']; C[u] = sum_b t[b, u + b]: a diagonal sum, read
        # as a strided view of the contiguous t (offset of [b, u + b] = u + b (E + 1)).
        t = (kern.view(m, h, k, k).transpose(-1, -2) @ s).contiguous()  # (M, H, k, E)
        s = t.as_strided((m, h, 1, v, k), (h * k * e, k * e, 0, 1, e + 1)).sum(-1)
    p = torch.softmax(s if neg is None else s + neg[:, None, None, :], dim=-1)  # (M, H, 1, V)
    return (p @ v_view)[:, :, 0]


def mlp_residual(p: Prepared, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """x (M, d) + attention a (M, d) through the output map, then the MLP residual."""
    x = x + linear(a, p.out_w, p.out_b)
    h = F.gelu(linear(layer_norm(x, p.ln2), p.fc1_w, p.fc1_b))
    return x + linear(h, p.fc2_w, p.fc2_b)


def spatial(blocks: list[Prepared], x: torch.Tensor,
            tab: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
    """The cross-site layers at each bin: x (n, S, d), rotary tables (n, S, 2, dh / 2) ->
    (n, S, d) (full attention over the S sites of a bin, as in the window model)."""
    n, s, d = x.shape
    if s == 1:  # one site attends to itself alone: weight 1, its value (q, k never read)
        x = x.reshape(n, d)
        for p in blocks:
            v = linear(layer_norm(x, p.ln1), p.in_w[:, 2 * d:3 * d], p.in_b[2 * d:3 * d])
            x = mlp_residual(p, x, v)
        return x.view(n, 1, d)
    tab = None if tab is None else (tab[0].reshape(n * s, 1, *tab[0].shape[2:]),
                                    tab[1].reshape(n * s, 1, *tab[1].shape[2:]))
    x = x.reshape(n * s, d)
    for p in blocks:
        qk, v, _ = project(p, layer_norm(x, p.ln1), tab)
        qk = qk.view(n, s, 2, p.heads, -1).permute(2, 0, 3, 1, 4)  # (2, n, H, S, dh)
        att = torch.softmax(qk[0] @ qk[1].transpose(-1, -2), dim=-1)  # (n, H, S, S)
        a = att @ v.view(n, s, p.heads, -1).transpose(1, 2)  # (n, H, S, dh)
        x = mlp_residual(p, x, a.transpose(1, 2).reshape(n * s, d))
    return x.view(n, s, d)

"""Multi-head attention: standard (PyTorch SDPA) and strictly causal context-based attention.

Context-based attention (RPNT): every sample and head gets its own k x k kernel, generated
from a summary of the layer input, and the kernel is convolved over the pre-softmax score
map before the causal mask and softmax, so attention can learn local temporal structure.

The released code leaks the future twice; here both paths are strictly causal:

* **Kernel generator**: the summary used for query row ``i`` is an attention pooling over
  inputs ``<= i`` only (a causally masked pooling), so each query row has its own kernel
  ``K_i`` that depends on the past and present only.
* **Taps**: tap ``(a, b)`` with ``a in 0..k-1`` and ``b in 0..k-1`` reads
  ``S[i - a, j + b - c]`` (``c = k // 2``): rows only at or *above* the query row (past
  queries), columns centred. Future scores (``j' > i'``) are zeroed before the convolution,
  so any score read at ``(i', j')`` has ``j' <= i' <= i``: nothing after ``i`` is touched.

The convolution is k*k shifted, weighted adds of the score map, run chunk by chunk in a
fused autograd function (:mod:`rpnt.model.ctx_attn`), not a grouped conv2d over B*H groups.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rpnt.model.ctx_attn import fused_context_attention
from rpnt.model.rope import RotaryEmbedding


def causal_future(length: int, device: torch.device | None = None) -> torch.Tensor:
    """(L, L) bool, True strictly above the diagonal (key after query)."""
    return torch.ones(length, length, dtype=torch.bool, device=device).triu(1)


def identity_kernel(shape: tuple[int, ...], kernel_size: int) -> torch.Tensor:
    """Kernels (``shape`` + (k*k,)) that leave the score map unchanged."""
    kern = torch.zeros(*shape, kernel_size * kernel_size)
    kern[..., kernel_size // 2] = 1.0  # tap (a=0, b=c): S[i, j]
    return kern


class ContextKernelGenerator(nn.Module):
    """Per-sample, per-head, per-query-row k x k kernels from a causal summary of the input.

    summary_i = sum_{s <= i} softmax_s(w . x_s) * MLP(x_s); kernel_i = softmax over taps of
    Linear(summary_i). The tap logits start biased towards the identity tap, so a fresh
    layer is close to standard attention.
    """

    def __init__(self, d_model: int, n_heads: int, kernel_size: int, ctx_dim: int,
                 identity_bias: float = 2.0):
        super().__init__()
        self.n_heads, self.kk = n_heads, kernel_size * kernel_size
        # No bias: a constant added to every pooling logit cancels in the softmax.
        self.pool = nn.Linear(d_model, 1, bias=False)
        self.summary = nn.Sequential(nn.Linear(d_model, ctx_dim), nn.GELU(),
                                     nn.Linear(ctx_dim, ctx_dim))
        self.to_kernel = nn.Linear(ctx_dim, n_heads * self.kk)
        nn.init.normal_(self.to_kernel.weight, std=0.02)
        with torch.no_grad():
            bias = torch.zeros(n_heads, self.kk)
            bias[:, kernel_size // 2] = identity_bias
            self.to_kernel.bias.copy_(bias.flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, L, d) -> kernels (B, H, L, k*k), each row summing to 1 over taps."""
        b, n, _ = x.shape
        logits = self.pool(x).squeeze(-1)  # (B, L)
        # Row i pools over s <= i only: causal attention pooling.
        pool = logits[:, None, :].expand(b, n, n).masked_fill(causal_future(n, x.device),
                                                               float("-inf")).softmax(-1)
        ctx = pool @ self.summary(x)  # (B, L, ctx_dim)
        kern = self.to_kernel(ctx).view(b, n, self.n_heads, self.kk).permute(0, 2, 1, 3)
        return kern.softmax(dim=-1)


class MultiHeadAttention(nn.Module):
    """Self-attention over a sequence, standard or context-based, with optional rotary.

    Args:
        kind: ``"standard"`` or ``"context"`` (context requires ``causal=True``).
        causal: mask keys after the query.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float, kind: str = "standard",
                 causal: bool = True, kernel_size: int = 3, ctx_dim: int = 64):
        super().__init__()
        if kind not in ("standard", "context"):
            raise ValueError(f"unknown attention kind {kind!r}")
        if kind == "context" and not causal:
            raise ValueError("context attention is defined for causal (temporal) attention")
        self.n_heads, self.kind, self.causal = n_heads, kind, causal
        self.kernel_size, self.dropout = kernel_size, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.kernel_gen = (ContextKernelGenerator(d_model, n_heads, kernel_size, ctx_dim)
                           if kind == "context" else None)

    def forward(self, x: torch.Tensor, angles: torch.Tensor | None = None,
                key_mask: torch.Tensor | None = None,
                need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend.

        Args:
            x: (B, L, d).
            angles: (B, L, head_dim // 2) rotary angles, or None.
            key_mask: (B, L) bool, True = key may be attended (non-causal use), or None.
            need_weights: also return the attention probabilities.
        Returns:
            (B, L, d) and, if ``need_weights``, (B, H, L, L) probabilities (else None).
        """
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.n_heads, d // self.n_heads).permute(
            2, 0, 3, 1, 4).unbind(0)  # each (B, H, L, dh)
        if angles is not None:
            ang = angles[:, None]  # broadcast over heads
            q, k = RotaryEmbedding.rotate(q, ang), RotaryEmbedding.rotate(k, ang)
        p = self.dropout if self.training else 0.0
        weights = None
        if self.kind == "context":
            if key_mask is not None:
                raise ValueError("context attention is causal over bins; it takes no key_mask")
            out, weights = fused_context_attention(q, k, v, self.kernel_gen(x),
                                                   self.kernel_size, p, need_weights)
        else:
            mask = None if key_mask is None else key_mask[:, None, None, :]
            if mask is not None and self.causal:
                mask = mask & ~causal_future(n, x.device)
            if need_weights:
                scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))
                if self.causal:
                    scores = scores.masked_fill(causal_future(n, x.device), float("-inf"))
                if mask is not None:
                    scores = scores.masked_fill(~mask, float("-inf"))
                weights = scores.softmax(-1)
                out = F.dropout(weights, p) @ v if p > 0 else weights @ v
            else:
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p,
                                                     is_causal=self.causal and mask is None)
        out = self.out(out.transpose(1, 2).reshape(b, n, d))
        return out, (weights if need_weights else None)

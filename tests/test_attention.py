"""Context-based attention: exact math, identity == standard, strict causality, gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from rpnt.bench.attention import grouped_conv2d_attention
from rpnt.model.attention import (
    ContextKernelGenerator,
    MultiHeadAttention,
    causal_future,
    identity_kernel,
)
from rpnt.model.ctx_attn import fused_context_attention

torch.set_num_threads(1)


def loop_reference(q, k, v, kernels, ksize):
    """Element-by-element definition: C[i,j] = sum_ab K[i,ab] S0[i-a, j+b-c] (S0 causal)."""
    n, dh = q.shape[-2:]
    c = ksize // 2
    s = (q @ k.transpose(-1, -2)) / math.sqrt(dh)
    s0 = s.masked_fill(causal_future(n), 0.0)
    conv = torch.zeros_like(s)
    for i in range(n):
        for j in range(n):
            for a in range(ksize):
                for bb in range(ksize):
                    ii, jj = i - a, j + bb - c
                    if 0 <= ii < n and 0 <= jj < n:
                        conv[:, :, i, j] += kernels[:, :, i, a * ksize + bb] * s0[:, :, ii, jj]
    probs = conv.masked_fill(causal_future(n), float("-inf")).softmax(-1)
    return probs @ v, probs


@pytest.fixture(params=["keep", "recompute", "keep-blocks", "recompute-blocks"])
def path(request, monkeypatch):
    """Every path: scores and probabilities kept or recomputed per chunk, and the map
    whole or split into causal row blocks (blocks of 4 rows here, or fewer than 4 blocks
    when that leaves fewer than k-1 rows per block)."""
    import rpnt.model.ctx_attn as ca

    keep = request.param.startswith("keep")
    monkeypatch.setattr(ca, "KEEP_MAPS_BYTES", 1 << 40 if keep else 0)
    monkeypatch.setattr(ca, "ROW_BLOCK", 4 if request.param.endswith("blocks") else 1 << 20)
    ca._blocks.cache_clear()
    yield request.param
    ca._blocks.cache_clear()


def rand_qkv(b=2, h=3, n=9, dh=4, ksize=3, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(b, h, n, dh, generator=g, dtype=dtype) for _ in range(3))
    kern = torch.randn(b, h, n, ksize * ksize, generator=g, dtype=dtype).softmax(-1)
    return q, k, v, kern


@pytest.mark.parametrize("ksize", [1, 3, 5])
def test_fused_matches_elementwise_definition(ksize, path):
    from rpnt.model.ctx_attn import _blocks

    q, k, v, kern = rand_qkv(ksize=ksize)
    if path.endswith("blocks") and ksize == 3:
        assert len(_blocks(9, ksize)) == 3  # the blocked path is the one tested
    out, probs = fused_context_attention(q, k, v, kern, ksize, need_weights=True)
    ref_out, ref_probs = loop_reference(q, k, v, kern, ksize)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(probs, ref_probs)
    assert float(probs.triu(1).abs().max()) == 0.0  # nothing attends to the future
    torch.testing.assert_close(probs.sum(-1), torch.ones_like(probs.sum(-1)))


def test_fused_matches_grouped_conv2d_reference(path):
    # With one kernel per sample-head (rows equal), the grouped conv2d of the bench computes
    # the same thing; this also pins the tap convention shared by the two.
    q, k, v, _ = rand_qkv(n=11, ksize=3)
    g = torch.Generator().manual_seed(1)
    per_head = torch.randn(2, 3, 9, generator=g, dtype=torch.float64).softmax(-1)
    rows = per_head[:, :, None, :].expand(2, 3, 11, 9)
    out, _ = fused_context_attention(q, k, v, rows, 3)
    torch.testing.assert_close(out, grouped_conv2d_attention(q, k, v, per_head, 3))


def test_identity_kernel_equals_standard_attention(path):
    q, k, v, _ = rand_qkv(n=13, dtype=torch.float32)
    for ksize in (3, 5):
        out, _ = fused_context_attention(q, k, v, identity_kernel((2, 3, 13), ksize), ksize)
        ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-5)


def test_gradients_match_finite_differences(path):
    q, k, v, kern = (t.requires_grad_() for t in rand_qkv(n=7, dh=3))
    assert torch.autograd.gradcheck(lambda *a: fused_context_attention(*a, 3)[0],
                                    (q, k, v, kern))

    def dropped(*a):
        torch.manual_seed(3)  # same dropout mask on every evaluation
        return fused_context_attention(*a, 3, dropout_p=0.3)[0]

    assert torch.autograd.gradcheck(dropped, (q, k, v, kern))


@pytest.mark.parametrize(("ksize", "n"), [(3, 8), (1, 8), (5, 8), (5, 2), (3, 1), (9, 11)])
def test_gradients_match_autograd_of_reference(ksize, n, path):
    # n < k: taps that reach above the first row touch nothing (and get zero gradient).
    q, k, v, kern = (t.requires_grad_() for t in rand_qkv(n=n, ksize=ksize))
    w = torch.randn(2, 3, n, 4, dtype=torch.float64)
    (fused_context_attention(q, k, v, kern, ksize)[0] * w).sum().backward()
    fused = [t.grad.clone() for t in (q, k, v, kern)]
    for t in (q, k, v, kern):
        t.grad = None
    (loop_reference(q, k, v, kern, ksize)[0] * w).sum().backward()
    for got, t in zip(fused, (q, k, v, kern), strict=True):
        torch.testing.assert_close(got, t.grad)


def test_chunking_does_not_change_results(monkeypatch, path):
    import rpnt.model.ctx_attn as ca

    q, k, v, kern = (t.requires_grad_() for t in rand_qkv(b=4, h=5, n=10))

    def run():
        for t in (q, k, v, kern):
            t.grad = None
        out = fused_context_attention(q, k, v, kern, 3)[0]
        out.sum().backward()
        return [out.detach(), *(t.grad for t in (q, k, v, kern))]

    whole = run()
    monkeypatch.setattr(ca, "CHUNK_BYTES", 4 * 10 * 10 * 3)  # 3 maps per chunk
    for got, ref in zip(run(), whole, strict=True):
        torch.testing.assert_close(got, ref)


def test_dropout_mask_is_reproducible_and_shared_by_both_paths(monkeypatch):
    import rpnt.model.ctx_attn as ca

    q, k, v, kern = rand_qkv(n=9)
    outs = []
    for keep in (1 << 40, 0):
        monkeypatch.setattr(ca, "KEEP_MAPS_BYTES", keep)
        torch.manual_seed(5)
        outs.append(fused_context_attention(q, k, v, kern, 3, dropout_p=0.5)[0])
    torch.testing.assert_close(outs[0], outs[1])
    torch.manual_seed(6)
    assert not torch.allclose(fused_context_attention(q, k, v, kern, 3, dropout_p=0.5)[0],
                              outs[0])


def _perturb_after(x, t, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = x.clone()
    y[:, t + 1:] = torch.randn(y[:, t + 1:].shape, generator=g, dtype=x.dtype) * 3
    return y


def test_kernel_generator_is_causal():
    torch.manual_seed(0)
    gen = ContextKernelGenerator(16, 2, 3, 8).double()
    x = torch.randn(2, 10, 16, dtype=torch.float64)
    base = gen(x)
    for t in (0, 4, 8):
        pert = gen(_perturb_after(x, t))
        torch.testing.assert_close(pert[:, :, : t + 1], base[:, :, : t + 1], atol=1e-12, rtol=0)
        assert not torch.allclose(pert[:, :, t + 1:], base[:, :, t + 1:])
    torch.testing.assert_close(base.sum(-1), torch.ones_like(base.sum(-1)))


def test_context_layer_is_strictly_causal():
    torch.manual_seed(0)
    layer = MultiHeadAttention(16, 2, 0.0, kind="context", kernel_size=3, ctx_dim=8).double()
    x = torch.randn(3, 12, 16, dtype=torch.float64)
    base, _ = layer(x)
    for t in (0, 3, 7, 10):
        out, _ = layer(_perturb_after(x, t, seed=t))
        torch.testing.assert_close(out[:, : t + 1], base[:, : t + 1], atol=1e-12, rtol=0)
        assert not torch.allclose(out[:, t + 1:], base[:, t + 1:])


def leaky_released_attention(x, layer):
    """The released code's leaks: kernels pooled over the whole window, centred taps."""
    b, n, d = x.shape
    h = layer.n_heads
    q, k, v = layer.qkv(x).view(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4).unbind(0)
    gen = layer.kernel_gen
    pool = gen.pool(x).squeeze(-1).softmax(-1)  # whole window, no causal mask
    ctx = (pool[:, :, None] * gen.summary(x)).sum(1)
    kern = gen.to_kernel(ctx).view(b, h, 1, 3, 3).softmax(-1)
    s = ((q @ k.transpose(-1, -2)) / math.sqrt(d // h)).masked_fill(causal_future(n), 0.0)
    conv = F.conv2d(s.reshape(1, b * h, n, n), kern.reshape(b * h, 1, 3, 3), padding=1,
                    groups=b * h).view(b, h, n, n)
    probs = conv.masked_fill(causal_future(n), float("-inf")).softmax(-1)
    return layer.out((probs @ v).transpose(1, 2).reshape(b, n, d))


def test_perturbation_check_catches_the_released_leak():
    # The check used above must be able to fail: on the released design it does.
    torch.manual_seed(0)
    layer = MultiHeadAttention(16, 2, 0.0, kind="context", kernel_size=3, ctx_dim=8).double()
    x = torch.randn(3, 12, 16, dtype=torch.float64)
    base = leaky_released_attention(x, layer)
    out = leaky_released_attention(_perturb_after(x, 5), layer)
    assert not torch.allclose(out[:, :6], base[:, :6], atol=1e-6)


def test_standard_layer_weights_and_key_mask():
    torch.manual_seed(0)
    layer = MultiHeadAttention(16, 2, 0.0, kind="standard", causal=False)
    x = torch.randn(2, 5, 16)
    keep = torch.tensor([[True] * 5, [True, True, True, False, False]])
    with torch.no_grad():
        out, w = layer(x, key_mask=keep, need_weights=True)
    out_fast, none = layer(x, key_mask=keep)
    assert none is None
    torch.testing.assert_close(out, out_fast, atol=1e-6, rtol=1e-5)
    assert w.shape == (2, 2, 5, 5)
    assert float(w[1, :, :, 3:].abs().max()) == 0.0
    # Padded keys do not influence real queries.
    x2 = x.clone()
    x2[1, 3:] += 5.0
    torch.testing.assert_close(layer(x2, key_mask=keep)[0][1, :3], out[1, :3], atol=1e-6,
                               rtol=1e-5)


def test_concurrent_calls_from_threads_do_not_share_scratch():
    from concurrent.futures import ThreadPoolExecutor

    inputs = [rand_qkv(b=4, h=4, n=40, dh=8, seed=s) for s in range(4)]
    alone = [fused_context_attention(*x, 3)[0] for x in inputs]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda x: fused_context_attention(*x, 3)[0], inputs * 10))
    for i, got in enumerate(together):
        torch.testing.assert_close(got, alone[i % 4], atol=0, rtol=0)

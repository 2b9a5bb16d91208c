"""``rpnt bench attention``: context attention vs. PyTorch SDPA and a grouped-conv2d version.

Each variant runs forward + backward on the same (B, H, T, dh) inputs in the same process.
Times are process CPU time (``time.process_time``, so time spent descheduled on a shared
machine does not count; with one torch thread it is the work done), minimum over
interleaved repeats; wall-clock minima are printed too. Peak memory is the largest live
total of the allocations made during one forward + backward, from the PyTorch profiler.
Ratios, not absolute times, are the result.

Variants (the "core" rows get q, k, v and the kernels as inputs):

* ``sdpa``     ``F.scaled_dot_product_attention(q, k, v, is_causal=True)``
* ``context``  :func:`rpnt.model.ctx_attn.fused_context_attention` (ours)
* ``conv2d``   :func:`grouped_conv2d_attention`, the straightforward version of the same
  math: grouped ``conv2d`` over B*H groups on the score map (one kernel per sample-head,
  which is all a grouped conv2d can express; ours also allows one kernel per query row).
* ``layer``    rows: the whole attention layer (projections, rotary, kernel generator) of
  :class:`rpnt.model.attention.MultiHeadAttention`, context vs. standard (SDPA).
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F


def grouped_conv2d_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                             kernels: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Reference: causal context attention with a grouped conv2d over B*H groups.

    q, k, v (B, H, L, dh); kernels (B, H, k*k), one per sample-head, tap ``a*k + b``
    reading ``S[i - a, j + b - k//2]`` as in :mod:`rpnt.model.ctx_attn`. Returns
    (B, H, L, dh).
    """
    b, h, n, dh = q.shape
    kk, c = kernel_size, kernel_size // 2
    future = torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(dh)
    scores = scores.masked_fill(future, 0.0).reshape(1, b * h, n, n)
    # conv2d cross-correlates: out[i, j] = sum_{u,v} W[u, v] * padded[i + u, j + v], and
    # padded[i + u, j + v] = S[i + u - (k-1), j + v - c]: so W[u, v] = K[a = k-1-u, b = v].
    weight = kernels.reshape(b * h, 1, kk, kk).flip(2)
    conv = F.conv2d(F.pad(scores, (c, c, kk - 1, 0)), weight, groups=b * h)
    probs = conv.view(b, h, n, n).masked_fill(future, float("-inf")).softmax(-1)
    return probs @ v


def peak_memory_bytes(fn: Callable[[], None]) -> int:
    """Peak of live bytes allocated while ``fn`` runs (CPU allocations, profiler events).

    The context kernel's reusable scratch buffers are dropped first, so that their
    allocation is counted too.
    """
    from torch.profiler import ProfilerActivity, profile

    from rpnt.model import ctx_attn

    ctx_attn._SCRATCH.clear()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    return max(itertools.accumulate((e.nbytes() for e in events), initial=0))


def time_variants(fns: dict[str, Callable[[], None]],
                  repeats: int) -> dict[str, tuple[list[float], list[float]]]:
    """Interleaved timing: each round runs every variant once.

    Returns name -> (CPU seconds per run, wall seconds per run).
    """
    for fn in fns.values():  # warm-up: allocator, kernels, thread pools
        fn()
        fn()
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            times[name][1].append(time.perf_counter() - t0)
            times[name][0].append(time.process_time() - c0)
    return times


def _fwd_bwd(forward: Callable[[], torch.Tensor], leaves: list[torch.Tensor]) -> Callable[[], None]:
    def run() -> None:
        for t in leaves:
            t.grad = None
        out = forward()
        out.backward(torch.ones_like(out))
    return run


def measure(batch: int, heads: int, d_model: int, length: int, ksize: int, repeats: int,
            seed: int) -> list[dict]:
    """Rows ``{"T", "variant", "time_min_ms", "time_median_ms", "wall_min_ms", "peak_mb"}``
    for one T (times: CPU time unless named wall)."""
    from rpnt.model.attention import MultiHeadAttention
    from rpnt.model.ctx_attn import fused_context_attention

    g = torch.Generator().manual_seed(seed)
    dh = d_model // heads
    q, k, v = (torch.randn(batch, heads, length, dh, generator=g).requires_grad_()
               for _ in range(3))
    kern = torch.randn(batch, heads, ksize * ksize, generator=g).softmax(-1).requires_grad_()
    core = [q, k, v, kern]

    def ours() -> torch.Tensor:
        rows = kern[:, :, None, :].expand(batch, heads, length, ksize * ksize)
        return fused_context_attention(q, k, v, rows, ksize)[0]

    x = torch.randn(batch, length, d_model, generator=g).requires_grad_()
    torch.manual_seed(seed)
    layer_ctx = MultiHeadAttention(d_model, heads, 0.0, kind="context", kernel_size=ksize,
                                   ctx_dim=d_model // 4)
    layer_std = MultiHeadAttention(d_model, heads, 0.0, kind="standard")
    fns = {
        "sdpa": _fwd_bwd(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), core),
        "context": _fwd_bwd(ours, core),
        "conv2d": _fwd_bwd(lambda: grouped_conv2d_attention(q, k, v, kern, ksize), core),
        "layer_standard": _fwd_bwd(lambda: layer_std(x)[0], [x, *layer_std.parameters()]),
        "layer_context": _fwd_bwd(lambda: layer_ctx(x)[0], [x, *layer_ctx.parameters()]),
    }
    times = time_variants(fns, repeats)
    rows = []
    for name, fn in fns.items():
        cpu, wall = times[name]
        rows.append({"T": length, "variant": name,
                     "time_min_ms": 1e3 * min(cpu),
                     "time_median_ms": 1e3 * statistics.median(cpu),
                     "wall_min_ms": 1e3 * min(wall),
                     "peak_mb": peak_memory_bytes(fn) / 2**20})
    return rows


def run(args: argparse.Namespace) -> int:
    from rpnt.atomic import write_json
    from rpnt.errors import RpntError
    from rpnt.provenance import provenance

    if args.d_model % args.heads or (args.d_model // args.heads) % 2:
        raise RpntError(f"bench attention: --d-model {args.d_model} must split into "
                        f"--heads {args.heads} heads of even size")
    if args.kernel_size < 1 or args.kernel_size % 2 == 0:
        raise RpntError(f"bench attention: --kernel-size {args.kernel_size} must be odd")
    torch.set_num_threads(args.threads)
    print(f"context attention fwd+bwd, B={args.batch} H={args.heads} d={args.d_model} "
          f"(dh={args.d_model // args.heads}) k={args.kernel_size}, {args.threads} thread(s), "
          f"min CPU time over {args.repeats} interleaved repeats")
    all_rows: list[dict] = []
    summary: list[dict] = []
    for length in args.lengths:
        rows = measure(args.batch, args.heads, args.d_model, length, args.kernel_size,
                       args.repeats, args.seed)
        by = {r["variant"]: r for r in rows}
        print(f"\nT={length}")
        print(f"  {'variant':<16}{'cpu min ms':>11}{'cpu median':>11}{'wall min ms':>12}"
              f"{'peak MB':>9}")
        for r in rows:
            print(f"  {r['variant']:<16}{r['time_min_ms']:>11.2f}{r['time_median_ms']:>11.2f}"
                  f"{r['wall_min_ms']:>12.2f}{r['peak_mb']:>9.1f}")
        ratios = {
            "T": length,
            "time_vs_sdpa": by["context"]["time_min_ms"] / by["sdpa"]["time_min_ms"],
            "time_vs_conv2d": by["context"]["time_min_ms"] / by["conv2d"]["time_min_ms"],
            "mem_vs_sdpa": by["context"]["peak_mb"] / max(by["sdpa"]["peak_mb"], 1e-9),
            "mem_vs_conv2d": by["context"]["peak_mb"] / max(by["conv2d"]["peak_mb"], 1e-9),
            "layer_time_vs_standard": (by["layer_context"]["time_min_ms"]
                                       / by["layer_standard"]["time_min_ms"]),
            "layer_mem_vs_standard": (by["layer_context"]["peak_mb"]
                                      / max(by["layer_standard"]["peak_mb"], 1e-9)),
        }
        print(f"  context / sdpa:    time {ratios['time_vs_sdpa']:.2f}x, "
              f"peak memory {ratios['mem_vs_sdpa']:.2f}x")
        print(f"  context / conv2d:  time {ratios['time_vs_conv2d']:.2f}x, "
              f"peak memory {ratios['mem_vs_conv2d']:.2f}x")
        print(f"  layer context / standard: time {ratios['layer_time_vs_standard']:.2f}x, "
              f"peak memory {ratios['layer_mem_vs_standard']:.2f}x")
        all_rows += rows
        summary.append(ratios)
    print("\ngoals: context <= 1.5x SDPA time at T=50; faster than grouped conv2d")
    for r in summary:
        goal_sdpa = "met" if r["time_vs_sdpa"] <= 1.5 else "missed"
        goal_conv = "met" if r["time_vs_conv2d"] < 1.0 else "missed"
        print(f"  T={r['T']}: vs SDPA {r['time_vs_sdpa']:.2f}x"
              f"{f' ({goal_sdpa})' if r['T'] == 50 else ''}; "
              f"vs conv2d {r['time_vs_conv2d']:.2f}x ({goal_conv})")
    if args.json:
        settings = {k: v for k, v in vars(args).items() if not k.startswith("_")}
        write_json(args.json, {"rows": all_rows, "ratios": summary,
                               "provenance": provenance(settings)})
        print(f"wrote {args.json}")
    return 0

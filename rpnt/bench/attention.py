"""``rpnt bench attention``: context attention vs. PyTorch SDPA and a grouped-conv2d version.

Each variant runs forward + backward on the same (B, H, T, dh) inputs in the same process,
interleaved (every round runs every variant once), so that load from other work on a
shared machine hits all of them alike. Times: with one torch thread, process CPU time
(``time.process_time``: time spent descheduled does not count); with more, wall-clock
time (CPU time would add up the threads). Reported: the minimum, median and maximum
over the rounds, the ratio of minima, and the spread of the per-round (paired) ratios.
Peak memory is measured separately, after the timing, for one forward + backward per
variant (median of 3): the increase of the process's peak resident set size as the OS counts it
(:class:`rpnt.machine.PeakRSS`; native allocations included), after returning freed heap
memory to the OS so that an earlier variant's leftovers cannot hide a later one's.

Variants (the core ones get q, k, v and the kernels as inputs):

* ``sdpa``     ``F.scaled_dot_product_attention(q, k, v, is_causal=True)``
* ``context``  :func:`rpnt.model.ctx_attn.fused_context_attention` (ours)
* ``conv2d``   :func:`grouped_conv2d_attention`, the straightforward version of the same
  math: grouped ``conv2d`` over B*H groups on the score map (one kernel per sample-head,
  which is all a grouped conv2d can express; ours also allows one kernel per query row).
* ``k1``       ours with k = 1: materialised causal attention through the same bmm's,
  chunks, row blocks and softmax, without the convolution. ``k1 / sdpa`` is what
  materialising the score map costs at all; ``context / k1`` is what the k x k
  convolution adds.
* ``layer_*``  the whole attention layer (projections, kernel generator) of
  :class:`rpnt.model.attention.MultiHeadAttention`, context vs. standard (SDPA).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import math
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from rpnt.atomic import write_json
from rpnt.errors import RpntError
from rpnt.machine import PeakRSS, machine_summary
from rpnt.model import ctx_attn
from rpnt.model.attention import MultiHeadAttention
from rpnt.model.ctx_attn import fused_context_attention
from rpnt.provenance import provenance

#: Ratios printed per length: (name, numerator variant, denominator variant).
RATIOS = (
    ("context / sdpa", "context", "sdpa"),
    ("context / conv2d", "context", "conv2d"),
    ("context / k1 (the convolution)", "context", "k1"),
    ("k1 / sdpa (materialising the map)", "k1", "sdpa"),
    ("layer context / standard", "layer_context", "layer_standard"),
)


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


def release_free_memory() -> None:
    """Return the heap's free pages to the OS (glibc ``malloc_trim``; a no-op elsewhere),
    so that a later peak-RSS increase counts every page a computation touches."""
    gc.collect()
    name = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError, TypeError):
        pass


def peak_rss_increase(fn: Callable[[], None], repeats: int = 1) -> int | None:
    """Peak-RSS increase (bytes) of one call of ``fn``, as the OS counts it (None if the
    OS cannot tell); the median of ``repeats`` calls (where the heap places a call's
    buffers moves the figure by a few MB). The context kernel's reusable scratch buffers
    are dropped first, so that their allocation counts too."""
    found = []
    for _ in range(repeats):
        ctx_attn._SCRATCH.clear()
        release_free_memory()
        with PeakRSS() as m:
            fn()
        if m.increase is None:
            return None
        found.append(m.increase)
    return int(statistics.median(found))


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


def variants(batch: int, heads: int, d_model: int, length: int, ksize: int,
             seed: int) -> dict[str, Callable[[], None]]:
    """The forward + backward closures of every variant, on seeded random inputs."""
    g = torch.Generator().manual_seed(seed)
    dh = d_model // heads
    q, k, v = (torch.randn(batch, heads, length, dh, generator=g).requires_grad_()
               for _ in range(3))
    kern = torch.randn(batch, heads, ksize * ksize, generator=g).softmax(-1).requires_grad_()
    ones = torch.ones(batch, heads, 1, dtype=q.dtype).requires_grad_()
    core = [q, k, v, kern]

    def ours() -> torch.Tensor:
        rows = kern[:, :, None, :].expand(batch, heads, length, ksize * ksize)
        return fused_context_attention(q, k, v, rows, ksize)[0]

    def ours_k1() -> torch.Tensor:
        rows = ones[:, :, None, :].expand(batch, heads, length, 1)
        return fused_context_attention(q, k, v, rows, 1)[0]

    x = torch.randn(batch, length, d_model, generator=g).requires_grad_()
    torch.manual_seed(seed)
    layer_ctx = MultiHeadAttention(d_model, heads, 0.0, kind="context", kernel_size=ksize,
                                   ctx_dim=d_model // 4)
    layer_std = MultiHeadAttention(d_model, heads, 0.0, kind="standard")
    return {
        "sdpa": _fwd_bwd(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), core),
        "context": _fwd_bwd(ours, core),
        "conv2d": _fwd_bwd(lambda: grouped_conv2d_attention(q, k, v, kern, ksize), core),
        "k1": _fwd_bwd(ours_k1, [q, k, v, ones]),
        "layer_standard": _fwd_bwd(lambda: layer_std(x)[0], [x, *layer_std.parameters()]),
        "layer_context": _fwd_bwd(lambda: layer_ctx(x)[0], [x, *layer_ctx.parameters()]),
    }


def measure(batch: int, heads: int, d_model: int, length: int, ksize: int, repeats: int,
            seed: int, threads: int = 1) -> tuple[list[dict], list[dict]]:
    """Rows per variant and ratios for one T and thread count.

    Row: ``{"T", "threads", "variant", "clock", "time_min_ms", "time_median_ms",
    "time_max_ms", "cpu_min_ms", "wall_min_ms", "peak_rss_mb"}``; ``time_*`` are CPU
    time with one thread, wall time with more (``clock`` says which). Ratio:
    ``{"T", "threads", "name", "time", "paired_median", "paired_min", "paired_max",
    "peak_rss"}``: ratio of minimum times, the per-round paired ratios, and of the
    peak-RSS increases (None where not measurable).
    """
    torch.set_num_threads(threads)
    fns = variants(batch, heads, d_model, length, ksize, seed)
    times = time_variants(fns, repeats)
    clock = 0 if threads == 1 else 1  # index into (cpu, wall)
    peaks = {name: peak_rss_increase(fn, repeats=3) for name, fn in fns.items()}
    rows = []
    for name in fns:
        t = times[name][clock]
        rows.append({"T": length, "threads": threads, "variant": name,
                     "clock": "cpu" if clock == 0 else "wall",
                     "time_min_ms": 1e3 * min(t), "time_median_ms": 1e3 * statistics.median(t),
                     "time_max_ms": 1e3 * max(t),
                     "cpu_min_ms": 1e3 * min(times[name][0]),
                     "wall_min_ms": 1e3 * min(times[name][1]),
                     "peak_rss_mb": None if peaks[name] is None else peaks[name] / 2**20})
    ratios = []
    for label, a, b in RATIOS:
        ta, tb = times[a][clock], times[b][clock]
        paired = [x / y for x, y in zip(ta, tb, strict=True)]
        pa, pb = peaks[a], peaks[b]
        ratios.append({"T": length, "threads": threads, "name": label,
                       "time": min(ta) / min(tb), "paired_median": statistics.median(paired),
                       "paired_min": min(paired), "paired_max": max(paired),
                       "peak_rss": None if not (pa and pb) else pa / pb})
    return rows, ratios


def _mb(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f}"


def _print_length(rows: list[dict], ratios: list[dict]) -> None:
    r0 = rows[0]
    print(f"\nT={r0['T']}, {r0['threads']} thread(s), {r0['clock']} time")
    print(f"  {'variant':<16}{'min ms':>9}{'median':>9}{'max':>9}{'wall min':>10}"
          f"{'peak RSS MB':>13}")
    for r in rows:
        print(f"  {r['variant']:<16}{r['time_min_ms']:>9.2f}{r['time_median_ms']:>9.2f}"
              f"{r['time_max_ms']:>9.2f}{r['wall_min_ms']:>10.2f}{_mb(r['peak_rss_mb']):>13}")
    for r in ratios:
        mem = "n/a" if r["peak_rss"] is None else f"{r['peak_rss']:.2f}x"
        print(f"  {r['name'] + ':':<36} time {r['time']:.2f}x (paired per round: median "
              f"{r['paired_median']:.2f}x, {r['paired_min']:.2f}-{r['paired_max']:.2f}x), "
              f"peak RSS {mem}")


def _print_goals(ratios: list[dict]) -> None:
    by = {(r["T"], r["threads"], r["name"]): r for r in ratios}
    print("\ngoals: context <= 1.5x SDPA at T=50 and faster than grouped conv2d (1 thread)")
    for (length, threads, name), r in sorted(by.items()):
        if name != "context / sdpa":
            continue
        conv = by[(length, threads, "context / conv2d")]["time"]
        conv_k1 = by[(length, threads, "context / k1 (the convolution)")]["time"]
        floor = by[(length, threads, "k1 / sdpa (materialising the map)")]["time"]
        verdict = ""
        if length == 50 and threads == 1:
            verdict = (f" [{'met' if r['time'] <= 1.5 else 'missed'}; "
                       f"{'met' if conv < 1.0 else 'missed'}]")
        print(f"  T={length}, {threads} thread(s): context {r['time']:.2f}x SDPA{verdict}, "
              f"{conv:.2f}x conv2d; of the {r['time']:.2f}x, materialising the T x T map "
              f"(k=1 vs SDPA) is {floor:.2f}x and the k x k convolution {conv_k1:.2f}x")


def run(args: argparse.Namespace) -> int:
    if args.d_model % args.heads or (args.d_model // args.heads) % 2:
        raise RpntError(f"bench attention: --d-model {args.d_model} must split into "
                        f"--heads {args.heads} heads of even size")
    if args.kernel_size < 1 or args.kernel_size % 2 == 0:
        raise RpntError(f"bench attention: --kernel-size {args.kernel_size} must be odd")
    if min(args.threads) < 1:
        raise RpntError(f"bench attention: --threads {args.threads} must be >= 1")
    machine = machine_summary()
    print(f"machine: {machine}; torch {torch.__version__}")
    print(f"context attention fwd+bwd, B={args.batch} H={args.heads} d={args.d_model} "
          f"(dh={args.d_model // args.heads}) k={args.kernel_size}; min / median / max over "
          f"{args.repeats} interleaved rounds; peak RSS increase of one fwd+bwd, measured "
          "apart from the timing")
    all_rows: list[dict] = []
    all_ratios: list[dict] = []
    for threads in args.threads:
        for length in args.lengths:
            rows, ratios = measure(args.batch, args.heads, args.d_model, length,
                                   args.kernel_size, args.repeats, args.seed, threads)
            _print_length(rows, ratios)
            all_rows += rows
            all_ratios += ratios
    _print_goals(all_ratios)
    if args.json:
        settings = {k: v for k, v in vars(args).items() if not k.startswith("_")}
        write_json(args.json, {"rows": all_rows, "ratios": all_ratios, "machine": machine,
                               "provenance": provenance(settings, machine=machine)})
        print(f"wrote {args.json}")
    return 0

"""``rpnt bench stream``: per-bin latency of every streaming decoder on one CPU thread.

For each model (RPNT tiny / small / paper size with its sites, GRU, NDT, Wiener; random
weights: latency does not depend on them) the cached stream and, for RPNT, recomputing
the whole window every bin are timed side by side in one process, in interleaved blocks
of bins so that both see the same machine load; so is the step's matrix products alone
(``matmuls only``: the same weights, shapes and calls, nothing else), the part of a step
that fewer or fused operations cannot remove in eager float32. Reported per bin: p50,
p99 and max (ms), and FALCON's normalised latency (mean compute time / bin duration, 20
ms bins). Goals (issue 21): paper-size RPNT p99 <= 1 ms and >= 5x faster than recomputing at T = 50.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rpnt.atomic import write_json
from rpnt.data.batches import Vocab
from rpnt.data.session import SPLIT_CODES, SessionData
from rpnt.decoders.base import Decoder
from rpnt.decoders.gru import GRUDecoder
from rpnt.decoders.ndt import NDTDecoder
from rpnt.decoders.rpnt_decoder import RPNTDecoder
from rpnt.decoders.wiener import WienerDecoder
from rpnt.machine import machine_summary
from rpnt.model import RPNTConfig
from rpnt.online.base import stream_decoder
from rpnt.provenance import provenance

#: model name -> (size preset, sites): "paper" is the paper's model (d 256, 4 temporal +
#: 2 spatial layers, 8 heads) on two recording sites, so its spatial layers act.
RPNT_SIZES = {"tiny": ("tiny", 1), "small": ("small", 1), "paper": ("small", 2)}
#: Goals of issue 21 for the paper-size RPNT.
GOAL_P99_MS = 1.0
GOAL_SPEEDUP = 5.0


def bench_session(n_sites: int, units: int, n_time: int, seed: int = 0) -> SessionData:
    """A session of Poisson counts (``units`` per site) to stream through."""
    rng = np.random.default_rng(seed)
    n_unit = units * n_sites
    sites = np.repeat([f"site{j}" for j in range(n_sites)], units)
    return SessionData(
        session="sub-B_ses-bench", subject="B", task="center_out",
        recording_date="2016-01-01", dataset="bench", bin_size_s=0.02,
        time=np.arange(n_time) * 0.02,
        spike_counts=rng.poisson(0.3, (n_time, n_unit)).astype(np.uint16),
        velocity=np.zeros((n_time, 2), np.float32),
        split=np.full(n_time, SPLIT_CODES["train"], np.int8),
        eval_mask=np.ones(n_time, bool), unit_id=np.arange(n_unit).astype(str),
        unit_area=np.full(n_unit, "M1"), unit_site=sites,
        unit_xyz=np.full((n_unit, 3), np.nan), trial_start=np.array([0.0]),
        trial_stop=np.array([n_time * 0.02]), trial_split=np.array(["train"]))


def _rpnt(size: str, session: SessionData, window: int, units: int) -> Decoder:
    preset, _ = RPNT_SIZES[size]
    cfg = RPNTConfig.preset(preset, n_units=units, window=window, dropout=0.0)
    return RPNTDecoder.build(cfg, Vocab.from_sessions([session])).eval()


def _peer(kind: str, n_unit: int, window: int) -> Decoder:
    base = {"n_unit": n_unit, "n_axis": 2, "window_bins": window, "dropout": 0.0}
    if kind == "gru":  # the defaults of baselines.gru / .ndt / .wiener (config.yaml)
        return GRUDecoder({**base, "hidden": 128, "layers": 1}).eval()
    if kind == "ndt":
        return NDTDecoder({**base, "d_model": 64, "layers": 2, "heads": 4}).eval()
    return WienerDecoder({**base, "lags": 5, "lam": 1.0}).eval()


class MatmulsOnly:
    """The matrix products of one RPNT stream step and nothing else: every prepared weight
    of :class:`rpnt.online.rpnt_stream.RPNTStream` applied by one ``addmm`` to as many rows
    as the step gives it (one per site; one for the velocity head; with one site the
    spatial blocks' value columns only, as the step)."""

    def __init__(self, stream: Any):
        self.stream = stream
        self.calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    @torch.no_grad()
    def reset(self, session: SessionData) -> None:
        st = self.stream
        st.reset(session)
        s = st.n_site
        pairs = [(st.emb_b[j, 0], st.emb_w[j], 1) for j in range(s)]
        d = st.cfg.d_model
        for j, p in enumerate(st.tblocks + st.sblocks):
            proj = (p.in_w, p.in_b)
            if s == 1 and j >= len(st.tblocks):  # one site: the stream reads values only
                proj = (p.in_w[:, 2 * d:3 * d], p.in_b[2 * d:3 * d])
            pairs += [(b, w, s) for w, b in (proj, (p.sum2_w, p.sum2_b),
                                             (p.kern_w, p.kern_b), (p.out_w, p.out_b),
                                             (p.fc1_w, p.fc1_b), (p.fc2_w, p.fc2_b))
                      if w is not None]
        pairs += [(b, w, 1) for w, b in st.head]
        self.calls = [(b, torch.randn(rows, w.shape[0]), w) for b, w, rows in pairs]

    @property
    def weight_bytes(self) -> int:
        return sum(w.shape[0] * w.shape[1] * w.element_size() for _, _, w in self.calls)

    @torch.inference_mode()
    def step(self, counts: np.ndarray) -> None:
        for b, x, w in self.calls:
            torch.addmm(b, x, w)


def time_streams(streams: dict[str, Any], session: SessionData, n_bins: int,
                 warmup: int, block: int = 50) -> dict[str, np.ndarray]:
    """Per-bin seconds of each stream, timed in interleaved blocks of ``block`` bins."""
    counts = session.spike_counts
    times = {name: [] for name in streams}
    pos = dict.fromkeys(streams, 0)
    for st in streams.values():
        st.reset(session)
    clock: Callable[[], int] = time.perf_counter_ns
    total = warmup + n_bins
    while min(pos.values()) < total:
        for name, st in streams.items():
            for _ in range(block):
                i = pos[name]
                if i >= total:
                    break
                c = counts[i % counts.shape[0]]
                t0 = clock()
                st.step(c)
                dt = clock() - t0
                if i >= warmup:
                    times[name].append(dt)
                pos[name] += 1
    return {name: np.asarray(v, np.float64) * 1e-9 for name, v in times.items()}


def summarise(sec: np.ndarray, bin_s: float) -> dict[str, float]:
    ms = sec * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "max_ms": float(ms.max()), "mean_ms": float(ms.mean()),
            "normalized_latency": float(sec.mean() / bin_s),
            "normalized_latency_p99": float(np.percentile(sec, 99) / bin_s)}


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    bin_s, t, units = 0.02, args.window, args.units
    print(f"rpnt bench stream: {machine_summary()}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread, batch 1, T = {t} bins, {units} units per site, "
          f"{args.bins} timed bins after {args.warmup} warm-up, 20 ms bins")
    rows: list[dict] = []
    for size in args.sizes:
        n_sites = RPNT_SIZES[size][1]
        session = bench_session(n_sites, units, args.bins + args.warmup + t, args.seed)
        dec = _rpnt(size, session, t, units)
        stream = stream_decoder(dec)
        floor = MatmulsOnly(stream_decoder(dec))
        streams = {"stream": stream, "recompute": stream_decoder(dec, recompute=True),
                   "matmuls only": floor}
        res = time_streams(streams, session, args.bins, args.warmup)
        for mode, sec in res.items():
            extra = {"weight_mb": floor.weight_bytes / 2 ** 20} if mode == "matmuls only" else {}
            rows.append({"model": f"rpnt-{size}", "sites": n_sites,
                         "d_model": dec.config.d_model, "mode": mode, **summarise(sec, bin_s),
                         **extra})
    for kind in args.peers:
        session = bench_session(1, units, args.bins + args.warmup + t, args.seed)
        st = stream_decoder(_peer(kind, session.n_unit, t))
        sec = time_streams({"stream": st}, session, args.bins, args.warmup)["stream"]
        mode = "recompute" if kind == "ndt" else "stream"
        rows.append({"model": kind, "sites": 1, "d_model": None, "mode": mode,
                     **summarise(sec, bin_s)})
    print(f"{'model':<12} {'sites':>5} {'mode':<12} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'norm. lat.':>10}")
    for r in rows:
        print(f"{r['model']:<12} {r['sites']:>5} {r['mode']:<12} {r['p50_ms']:>8.3f} "
              f"{r['p99_ms']:>8.3f} {r['max_ms']:>8.3f} {r['normalized_latency']:>10.4f}")
    verdict = goals(rows)
    for line in verdict:
        print(line)
    if args.json:
        write_json(args.json, {"rows": rows, "goals": verdict, "machine": machine_summary(),
                               "window": t, "units": units, "bins": args.bins,
                               "provenance": provenance(None)})
        print(f"wrote {args.json}")
    return 0


def goals(rows: list[dict]) -> list[str]:
    """The two goals of issue 21, met or not, for each RPNT size measured."""
    out = []
    by = {(r["model"], r["mode"]): r for r in rows}
    for model in sorted({r["model"] for r in rows if r["model"].startswith("rpnt-")}):
        st, rc = by.get((model, "stream")), by.get((model, "recompute"))
        if st is None or rc is None:
            continue
        speed = rc["p50_ms"] / st["p50_ms"]
        out.append(f"{model}: stream p99 {st['p99_ms']:.3f} ms "
                   f"({'meets' if st['p99_ms'] <= GOAL_P99_MS else 'misses'} <= "
                   f"{GOAL_P99_MS} ms); {speed:.1f}x faster than recomputing at p50 "
                   f"({'meets' if speed >= GOAL_SPEEDUP else 'misses'} >= {GOAL_SPEEDUP}x)")
        mm = by.get((model, "matmuls only"))
        if mm is not None:
            out.append(f"{model}: its matrix products alone take p50 {mm['p50_ms']:.3f} ms "
                       f"({mm['p50_ms'] / st['p50_ms']:.0%} of the step): "
                       f"{mm['weight_mb']:.1f} MiB of float32 weights read per bin, "
                       f"{mm['weight_mb'] / 1024 / (mm['p50_ms'] * 1e-3):.1f} GiB/s")
    return out


"""``rpnt bench pretrain``: pretraining throughput with 1 and 2 data-parallel ranks.

Three layouts of the same pretraining run (tiny RPNT, ssl objective, the same global
batch, synthetic sessions of Poisson counts held in memory), each started as real
processes with ``torchrun`` (gloo), interleaved over ``--repeats`` rounds:

* ``1 rank x 1 thread``   the reference;
* ``2 ranks x 1 thread``  data parallel: each rank half of every batch (goal: >= 1.7x
  the reference's samples per second);
* ``1 rank x 2 threads``  the same two cores used by intra-op threads instead.

Samples per second = optimizer steps x global batch / the wall time of
:func:`rpnt.train.trainer.fit` (rank 0's; model building and session loading are
outside it), median over rounds; the loader's share is the part of that time rank 0
spent drawing batches (:class:`rpnt.data.sampler.EpochSampler`). The machine's load is
not controlled: run it on a quiet machine for figures to quote.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from dataclasses import replace

import numpy as np

from rpnt.errors import RpntError

#: Goal of issue 23: two ranks of one thread against one rank of one thread.
GOAL = 1.7
LAYOUTS = (("1 rank x 1 thread", 1, 1), ("2 ranks x 1 thread", 2, 1),
           ("1 rank x 2 threads", 1, 2))


def synthetic_sessions(n: int, units: int, bins: int, seed: int):
    """``n`` in-memory sessions of Poisson counts (2 sites), every bin a training bin."""
    from rpnt.data.session import SPLIT_CODES, SessionData

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        site = np.array(["M1"] * (units // 2) + ["PMd"] * (units - units // 2))
        time = np.arange(bins) * 0.02
        out.append(SessionData(
            session=f"sub-B_ses-CO-{20200101 + i}", subject="B", task="center_out",
            recording_date=f"2020-01-{1 + i % 28:02d}", dataset="bench", bin_size_s=0.02,
            time=time, spike_counts=rng.poisson(0.2, (bins, units)).astype(np.uint8),
            velocity=rng.normal(size=(bins, 2)).astype(np.float32),
            split=np.full(bins, SPLIT_CODES["train"], np.int8),
            eval_mask=np.zeros(bins, bool), unit_id=np.array([str(u) for u in range(units)]),
            unit_area=site, unit_site=site, unit_xyz=np.full((units, 3), np.nan),
            trial_start=time[:1], trial_stop=time[-1:], trial_split=np.array(["train"])))
    return out


#: settings of ``rpnt bench pretrain`` that every rank needs
WORKER_KEYS = ("sessions", "units", "bins", "steps", "batch", "window", "size", "seed")


def worker(args: argparse.Namespace) -> None:
    """One rank: pretrain on synthetic sessions; rank 0 prints ``RESULT {json}``."""
    import torch

    from rpnt import ranks
    from rpnt.model import RPNTConfig
    from rpnt.train.config import PretrainConfig
    from rpnt.train.pretrain import pretrain
    from rpnt.train.trainer import TrainConfig

    torch.set_num_threads(args.threads)
    me = ranks.init("cpu")
    sessions = synthetic_sessions(args.sessions, args.units, args.bins, args.seed)
    train = TrainConfig(steps=args.steps, batch_size=args.batch, warmup_steps=1,
                        eval_every=10**9, checkpoint_every=0, log_every=10**9, device="cpu")
    pcfg = replace(PretrainConfig(), train=train, probe_sessions=0)
    cfg = RPNTConfig.preset(args.size, n_units=args.units // 2, window=args.window)
    try:
        _, result = pretrain(sessions, cfg, pcfg, args.seed, None, None, val_sessions=[])
    finally:
        ranks.finish()
    if me.main:
        print("RESULT " + json.dumps({"seconds": result.seconds,
                                      "loader_seconds": result.loader_seconds,
                                      "steps": result.steps_done}), flush=True)


def _launch(args: argparse.Namespace, n_ranks: int, threads: int) -> dict[str, float]:
    spec = {**{k: getattr(args, k) for k in WORKER_KEYS}, "threads": threads}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={n_ranks}", "-m", "rpnt.bench.pretrain", json.dumps(spec)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RpntError(f"bench pretrain: {n_ranks} rank(s) x {threads} thread(s) failed "
                        f"(exit {proc.returncode}): {proc.stderr.strip()[-800:]}")
    return json.loads(lines[-1][len("RESULT "):])


def run(args: argparse.Namespace) -> int:
    from rpnt.bench.units import write_results
    from rpnt.machine import machine_summary

    machine = machine_summary()
    print(f"machine: {machine}; {args.size} RPNT, global batch {args.batch}, "
          f"{args.steps} steps, {args.sessions} sessions x {args.units} units; "
          "the machine's load is not controlled")
    if args.batch % 2:
        raise RpntError(f"--batch {args.batch} must be even (split over 2 ranks)")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in LAYOUTS}
    for _ in range(args.repeats):  # interleaved: a load change hits every layout
        for name, n_ranks, threads in LAYOUTS:
            runs[name].append(_launch(args, n_ranks, threads))
    rows = []
    for name, n_ranks, threads in LAYOUTS:
        rates = [r["steps"] * args.batch / r["seconds"] for r in runs[name]]
        share = [r["loader_seconds"] / r["seconds"] for r in runs[name]]
        rows.append({"layout": name, "ranks": n_ranks, "threads": threads,
                     "samples_per_s": statistics.median(rates),
                     "loader_share": statistics.median(share)})
    ref = rows[0]["samples_per_s"]
    print(f"{'layout':<20} {'samples/s':>10} {'x 1 rank':>9} {'loader':>7}")
    for r in rows:
        r["ratio"] = r["samples_per_s"] / ref
        print(f"{r['layout']:<20} {r['samples_per_s']:>10.1f} {r['ratio']:>8.2f}x "
              f"{100 * r['loader_share']:>6.1f}%")
    two = rows[1]["ratio"]
    print(f"2 ranks / 1 rank: {two:.2f}x (goal >= {GOAL}x: {'met' if two >= GOAL else 'missed'})"
          f"; 2 ranks / 2 threads: {rows[1]['samples_per_s'] / rows[2]['samples_per_s']:.2f}x")
    write_results(args.json, args, rows, machine)
    return 0


if __name__ == "__main__":  # one rank, started by torchrun from run(): settings as JSON
    worker(argparse.Namespace(**json.loads(sys.argv[1])))

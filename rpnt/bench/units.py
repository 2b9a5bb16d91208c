"""``rpnt bench units``: what reading every unit costs, against the released 50 slots.

One training step of the whole model - forward + backward of the finetuning loss
(velocity MSE) and of the pretraining loss (masked reconstruction + site contrast) - at
``--units`` unit slots per site (every unit of a large array) and at 50 (the released
code's slot limit), for each size preset, interleaved in one process as in
:mod:`rpnt.bench.attention`: process CPU time with one thread, minimum / median over the
rounds and the ratio of minima; peak RSS increase of one step (median of 3), measured
apart from the timing (:func:`rpnt.bench.attention.peak_rss_increase`).
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch

from rpnt.atomic import write_json
from rpnt.bench.attention import peak_rss_increase, time_variants
from rpnt.errors import RpntError
from rpnt.machine import machine_summary
from rpnt.model.config import RPNTConfig
from rpnt.model.rpnt import RPNT
from rpnt.provenance import provenance


def bench_config(size: str, n_units: int, window: int, sites: int, **over) -> RPNTConfig:
    """The size preset with a per-session read-in over ``sites`` and the metadata coords."""
    cfg = RPNTConfig.preset(size, n_units=n_units, window=window, readin="session",
                            n_readins=sites, coords=("subject", "date", "task"))
    return replace(cfg, **over) if over else cfg


def random_batch(cfg: RPNTConfig, batch: int, sites: int, seed: int) -> dict[str, Any]:
    """Seeded random inputs of one training step: Poisson counts (B, S, T, N), a full unit
    mask, per-site coordinates and read-in rows, and a velocity target (B, T, n_axis)."""
    g = torch.Generator().manual_seed(seed)
    shape = (batch, sites, cfg.window, cfg.n_units)
    return {
        "counts": torch.poisson(torch.rand(*shape, generator=g) * 0.4),
        "unit_mask": torch.ones(batch, sites, cfg.n_units, dtype=torch.bool),
        "coords": {c: torch.full((batch, sites), float(i + 1))
                   for i, c in enumerate(cfg.coords)},
        "readin": torch.arange(sites).expand(batch, sites),
        "target": torch.randn(batch, cfg.window, cfg.n_axis, generator=g),
    }


def one_thread() -> str:
    """Time on one torch thread; print and return the machine it runs on."""
    torch.set_num_threads(1)
    machine = machine_summary()
    print(f"machine: {machine}; torch {torch.__version__}; 1 thread")
    return machine


def write_results(path: str | None, args: argparse.Namespace, rows: list[dict[str, Any]],
                  machine: str) -> None:
    """With ``--json``: the rows, the machine and the settings' provenance, atomically."""
    if not path:
        return
    settings = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    write_json(path, {"rows": rows, "machine": machine,
                      "provenance": provenance(settings, machine=machine)})
    print(f"wrote {path}")


def step(size: str, n_units: int, batch: int, sites: int, window: int, objective: str,
         seed: int) -> Callable[[], None]:
    """One forward + backward of ``objective`` ("finetune" | "pretrain") on random counts."""
    torch.manual_seed(seed)
    cfg = bench_config(size, n_units, window, sites)
    model = RPNT(cfg).train()
    b = random_batch(cfg, batch, sites, seed)
    inputs = (b["counts"], b["unit_mask"], b["coords"])

    def run() -> None:
        model.zero_grad(set_to_none=True)
        if objective == "finetune":
            pred = model.velocity(*inputs, readin=b["readin"])
            loss = torch.nn.functional.mse_loss(pred, b["target"])
        else:
            loss = model.pretrain_loss(*inputs, readin=b["readin"],
                                       generator=torch.Generator().manual_seed(seed))["loss"]
        loss.backward()
    return run


def run(args: argparse.Namespace) -> int:
    if args.units < 1 or args.batch < 1 or args.sites < 1:
        raise RpntError("bench units: --units, --batch and --sites must be >= 1")
    machine = one_thread()
    print(f"one training step (forward + backward), B={args.batch} windows of "
          f"{args.window} bins x {args.sites} sites; {args.units} vs 50 unit slots per site")
    rows = []
    for size in args.sizes:
        for objective in ("finetune", "pretrain"):
            fns = {n: step(size, n, args.batch, args.sites, args.window, objective, args.seed)
                   for n in (50, args.units)}
            times = time_variants(fns, args.repeats)
            mem = {n: peak_rss_increase(fn, repeats=3) for n, fn in fns.items()}
            cpu = {n: times[n][0] for n in fns}
            row = {"size": size, "objective": objective,
                   "cpu_ms_min": {n: 1e3 * min(v) for n, v in cpu.items()},
                   "cpu_ms_median": {n: 1e3 * statistics.median(v) for n, v in cpu.items()},
                   "peak_rss_mb": {n: None if m is None else m / 1e6 for n, m in mem.items()}}
            row["time_ratio"] = row["cpu_ms_min"][args.units] / row["cpu_ms_min"][50]
            rows.append(row)
            mb = row["peak_rss_mb"]
            print(f"{size:6s} {objective:8s} CPU ms min/median: 50 slots "
                  f"{row['cpu_ms_min'][50]:.1f}/{row['cpu_ms_median'][50]:.1f}, "
                  f"{args.units} slots {row['cpu_ms_min'][args.units]:.1f}/"
                  f"{row['cpu_ms_median'][args.units]:.1f} -> x{row['time_ratio']:.2f}; "
                  f"peak RSS increase MB: {mb[50]} vs {mb[args.units]}")
    write_results(args.json, args, rows, machine)
    return 0

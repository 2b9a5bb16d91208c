"""The latency section of the benchmark table: per-bin stream latency beside R².

A metrics record written by ``rpnt evaluate --stream`` carries ``"scoring": "stream"``
and ``latency`` (p50, p99 and max ms per bin of the first bins stepped one at a time on
one CPU thread, FALCON's normalised latency, the CPU; :mod:`rpnt.online.replay`). When
any record has it, the table gains a "Decoding online" section and ``latency.csv``, one
row per (model, scenario, budget) with stream records:

* R²: mean ± std over the stream-scored runs only (their own cell, even where the main
  table pools them with stitched records);
* p50: the median over runs of each run's p50; p99 and max: the largest over runs (the
  worst tail any run showed); normalised latency: the mean over runs; CPU: the CPUs the
  runs were timed on.

Without such records nothing is added: the table of a default benchmark is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rpnt.data.budget import ALL
from rpnt.eval.cells import Cell, write_csv_rows

CSV_HEADER = ["scenario", "budget", "model", "r2_mean", "r2_std", "n", "p50_ms", "p99_ms",
              "max_ms", "normalized_latency", "cpu"]


def latency_rows(records: Sequence[dict[str, Any]],
                 models: Sequence[str]) -> list[dict[str, Any]]:
    """One pooled row per (model, scenario, budget) with stream records, in the order of
    ``models`` (the table's rows), then scenario and budget as met."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for rec in records:
        lat = rec.get("latency")
        if rec.get("skipped") is not None or not isinstance(lat, dict):
            continue
        key = (str(rec["model"]), str(rec.get("scenario")), str(rec.get("budget", ALL)))
        groups.setdefault(key, []).append(rec)
    rank = {m: i for i, m in enumerate(models)}
    out = []
    for (model, scenario, budget), recs in sorted(
            groups.items(), key=lambda kv: rank.get(kv[0][0], len(rank))):
        lat = [r["latency"] for r in recs]
        r2 = [float(r["r2"]["mean"]) for r in recs
              if r["r2"]["mean"] is not None and np.isfinite(float(r["r2"]["mean"]))]
        out.append({"model": model, "scenario": scenario, "budget": budget,
                    "r2": Cell(values=r2),
                    "p50_ms": float(np.median([x["p50_ms"] for x in lat])),
                    "p99_ms": float(max(x["p99_ms"] for x in lat)),
                    "max_ms": float(max(x["max_ms"] for x in lat)),
                    "normalized_latency": float(np.mean([x["normalized_latency"]
                                                         for x in lat])),
                    "cpu": ", ".join(sorted({str(x.get("cpu", "?")) for x in lat}))})
    return out


def latency_section(records: Sequence[dict[str, Any]], models: Sequence[str]) -> list[str]:
    """Markdown lines of the section (empty without stream records)."""
    rows = latency_rows(records, models)
    if not rows:
        return []
    lines = ["## Decoding online", "",
             "Rows scored streamed (`rpnt evaluate --stream`, docs/online.md): R² of the "
             "stream-scored runs, and per-bin compute time of one step at batch 1 on one CPU "
             "thread (p50: median over runs; p99: largest over runs; normalised latency: "
             "mean compute time / bin duration, FALCON's definition).", "",
             "| model | scenario | budget | R² (stream) | p50 ms | p99 ms | "
             "normalised latency | CPU |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['scenario']} | {r['budget']} | {r['r2'].text()} | "
                     f"{r['p50_ms']:.3f} | {r['p99_ms']:.3f} | "
                     f"{r['normalized_latency']:.4f} | {r['cpu']} |")
    return [*lines, ""]


def latency_csv(records: Sequence[dict[str, Any]], models: Sequence[str]) -> str | None:
    """``latency.csv`` text (CSV_HEADER columns), or None without stream records."""
    rows = latency_rows(records, models)
    if not rows:
        return None
    body = [[r["scenario"], r["budget"], r["model"],
             repr(r["r2"].mean) if r["r2"].n else "",
             "" if np.isnan(r["r2"].std) else repr(r["r2"].std), r["r2"].n,
             repr(r["p50_ms"]), repr(r["p99_ms"]), repr(r["max_ms"]),
             repr(r["normalized_latency"]), r["cpu"]] for r in rows]
    return write_csv_rows([CSV_HEADER, *body])

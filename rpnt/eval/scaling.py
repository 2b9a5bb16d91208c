"""The scaling study: decoding R² on one target against the pretraining data behind it.

A scaling group is every scenario of the config with one ``target`` selector, when at
least one of them limits or widens its pretraining corpus (``n_pretrain_sessions``,
``pretrain_manifests``: rpnt.data.scenarios). Each scenario is a point: its corpus (the
datasets its pretrainings read) and its number of pretraining sessions (the target's
excluded), from the pretrained models' ``meta.json``. The cells are the benchmark
table's (:class:`rpnt.eval.tables.Table`): mean ± std of R² over targets × seeds at each
label budget, and paired differences against ``rpnt_scratch`` and ``gru`` on the same
(target, seed) runs, i.e. the same labelled and test trials. Those two rows do not depend
on the corpus: they may run in one scenario of the group (``model_scenarios``), whose
runs every point is paired with.

Outputs: a markdown section of ``table.md``, ``scaling.csv`` (long format) and the
figure ``scaling.png`` (R² against pretraining sessions, one line per label budget, one
panel per group and pretrained row).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rpnt.eval.cells import Cell, write_csv_rows
from rpnt.eval.tables import REFERENCES, Table
from rpnt.rows import SCRATCH

#: scaling.csv columns
CSV_KEYS = ("group", "model", "corpus", "n_sessions", "scenario", "budget", "mean", "std",
            "n", "minus_scratch_mean", "minus_scratch_std", "minus_gru_mean",
            "minus_gru_std", "n_pairs")


@dataclass(frozen=True)
class Point:
    """One scenario of a scaling group."""

    scenario: str
    corpus: str  #: its pretraining datasets, joined by "+"
    n_sessions: float  #: pretraining sessions (the target's excluded), mean over seeds


def _target_key(scen: Mapping[str, Any]) -> str:
    return json.dumps(scen.get("target"), sort_keys=True, default=str)


def scaling_groups(config: Mapping[str, Any] | None,
                   pretrained: Sequence[Mapping[str, Any]]) -> dict[str, list[Point]]:
    """{group label: its points sorted by (corpus size, corpus, sessions)} from the
    config's scenarios and the pretrained models' meta.json dicts (none without a
    scaling scenario)."""
    scen_cfg = dict((config or {}).get("scenarios") or {})
    marked = {_target_key(sc or {}) for sc in scen_cfg.values()
              if sc and ("n_pretrain_sessions" in sc or "pretrain_manifests" in sc)}
    counts: dict[str, list[int]] = {}
    corpora: dict[str, set[str]] = {}
    for meta in pretrained:
        pre = meta.get("pretraining") or {}
        scen = str(meta.get("scenario"))
        targets = set(pre.get("target_sessions") or [])
        counts.setdefault(scen, []).append(
            len([s for s in pre.get("pretrain_sessions") or [] if s not in targets]))
        corpora.setdefault(scen, set()).update(pre.get("datasets") or [])
    groups: dict[str, list[Point]] = {}
    for name, sc in scen_cfg.items():
        key = _target_key(sc or {})
        if key not in marked or name not in counts:
            continue
        corpus = "+".join(sorted(corpora[name])) or "?"
        groups.setdefault(f"target {key}", []).append(
            Point(name, corpus, float(np.mean(counts[name]))))
    for pts in groups.values():
        pts.sort(key=lambda p: (p.corpus.count("+"), p.corpus, p.n_sessions))
    return groups


def _reference(table: Table, ref: str, pts: Sequence[Point], budget: str) -> str:
    """The scenario of the group whose ``ref`` runs the points are compared with: the
    first with results (``model_scenarios`` may train ``ref`` in one scenario only; it
    does not depend on the corpus, and its runs share target, seed and trials)."""
    return next((p.scenario for p in pts if table.cell(ref, p.scenario, budget).values),
                pts[0].scenario)


def _paired(table: Table, model: str, point: Point, ref: str, pts: Sequence[Point],
            budget: str) -> Cell:
    """``model`` at ``point`` minus ``ref`` over the (target, seed) runs both have."""
    a = table.cell(model, point.scenario, budget)
    b = table.cell(ref, _reference(table, ref, pts, budget), budget)
    out = Cell()
    for run in sorted(set(a.runs) & set(b.runs), key=str):
        out.values.append(a.runs[run] - b.runs[run])
        out.runs[run] = out.values[-1]
    return out


def _rows(table: Table, groups: Mapping[str, list[Point]]) -> list[tuple[str, str, Point]]:
    """(group, model, point) for every pretrained RPNT row with results in the group."""
    models = [m for m in table.models if m.startswith("rpnt_") and m != SCRATCH]
    out = []
    for g, pts in groups.items():
        for m in models:
            out += [(g, m, p) for p in pts
                    if any(table.cell(m, p.scenario, b).values for b in table.budgets)]
    return out


def scaling_csv(table: Table, groups: Mapping[str, list[Point]]) -> str:
    """scaling.csv: one row per group, pretrained row, point and budget (columns
    :data:`CSV_KEYS`; the header alone without a scaling group)."""
    rows: list[list[Any]] = [list(CSV_KEYS)]

    def num(v: float) -> str:
        return "" if math.isnan(v) else repr(float(v))

    for g, m, p in _rows(table, groups):
        for b in table.budgets:
            c = table.cell(m, p.scenario, b)
            d = {r: _paired(table, m, p, r, groups[g], b) for r in REFERENCES}
            rows.append([g, m, p.corpus, p.n_sessions, p.scenario, b, num(c.mean),
                         num(c.std), c.n, num(d[SCRATCH].mean), num(d[SCRATCH].std),
                         num(d["gru"].mean), num(d["gru"].std), d[SCRATCH].n])
    return write_csv_rows(rows)


def scaling_lines(table: Table, groups: Mapping[str, list[Point]]) -> list[str]:
    """The markdown section (none without a scaling group)."""
    rows = _rows(table, groups)
    if not rows:
        return []
    budgets = table.budgets
    lines = ["## Scaling with pretraining data", "",
             "R² on the target against the pretraining corpus: mean ± std over targets × "
             "seeds; below it the paired difference against RPNT from scratch on the same "
             "(target, seed) runs (same labelled and test trials). Sessions: pretraining "
             "sessions, the targets excluded (n_pretrain_sessions draws them with each "
             "seed). RPNT from scratch and the GRU do not depend on the corpus: their "
             "rows are those of the group's first scenario that has them.", ""]
    done: set[tuple[str, str]] = set()
    for g, m, _ in rows:
        if (g, m) in done:
            continue
        done.add((g, m))
        pts = [p for gg, mm, p in rows if (gg, mm) == (g, m)]
        lines += [f"### {m}, {g}", "",
                  "| corpus | sessions | scenario | " + " | ".join(
                      f"{b} trials" for b in budgets) + " |",
                  "|---|---|---|" + "---|" * len(budgets)]
        for p in pts:
            cells = []
            for b in budgets:
                d = _paired(table, m, p, SCRATCH, groups[g], b)
                cells.append(f"{table.cell(m, p.scenario, b).text()}<br>"
                             f"− scratch {d.text(sign=True)}")
            lines.append(f"| {p.corpus} | {p.n_sessions:g} | {p.scenario} | "
                         + " | ".join(cells) + " |")
        for ref in REFERENCES:
            scen = _reference(table, ref, groups[g], budgets[-1])
            cells = [table.cell(ref, _reference(table, ref, groups[g], b), b).text()
                     for b in budgets]
            lines.append(f"| {ref} | – | {scen} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def plot_scaling(table: Table, groups: Mapping[str, list[Point]], out: str | Path,
                 title: str = "R² against pretraining sessions") -> Path | None:
    """R² against pretraining sessions (log2 axis), one panel per group and pretrained
    row, one line per label budget (error bars: std over targets × seeds); the first
    corpus solid, a corpus with more datasets dashed; RPNT from scratch (dotted) and the
    GRU (dash-dot) as horizontal lines in the budget's colour. None without points."""
    # matplotlib only where a figure is drawn: `rpnt table` imports this module
    from rpnt.eval.figures import _figure, _save

    rows = _rows(table, groups)
    panels = list(dict.fromkeys((g, m) for g, m, _ in rows))
    if not panels:
        return None
    cols = min(len(panels), 2)
    nrows = -(-len(panels) // cols)
    fig = _figure(5.0 * cols + 1.8, 3.6 * nrows)
    axes = np.atleast_1d(fig.subplots(nrows, cols, squeeze=False)).ravel()
    for ax, (g, m) in zip(axes, panels, strict=False):
        pts = [p for gg, mm, p in rows if (gg, mm) == (g, m)]
        corpora = list(dict.fromkeys(p.corpus for p in pts))
        for i, b in enumerate(table.budgets):
            color = f"C{i % 10}"
            for k, corpus in enumerate(corpora):
                mine = [p for p in pts if p.corpus == corpus]
                cells = [table.cell(m, p.scenario, b) for p in mine]
                mean = np.array([c.mean for c in cells])
                if not np.isfinite(mean).any():
                    continue
                ax.errorbar([p.n_sessions for p in mine], mean,
                            yerr=np.nan_to_num(np.array([c.std for c in cells])),
                            color=color, ls="-" if k == 0 else "--", marker="o" if k == 0
                            else "s", ms=4, capsize=2, lw=1.6,
                            label=f"{b} trials" + ("" if k == 0 else f", {corpus}"))
            for ref, ls in ((SCRATCH, ":"), ("gru", "-.")):
                c = table.cell(ref, _reference(table, ref, groups[g], b), b)
                if c.values:
                    ax.axhline(c.mean, color=color, ls=ls, lw=1,
                               label=f"{ref}, {b} trials")
        ax.set_xscale("log", base=2)
        xs = sorted({p.n_sessions for p in pts})
        ax.set_xticks(xs, [f"{x:g}" for x in xs])
        ax.set_title(f"{m}\n{g}", fontsize=8)
        ax.set_xlabel("pretraining sessions (target excluded)")
        ax.set_ylabel("test R² (mean of vx, vy)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(f"{title} (error bars: std over targets × seeds)", fontsize=10)
    return _save(fig, out)


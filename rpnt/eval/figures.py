"""Benchmark figures (PNG, each written atomically; matplotlib without pyplot).

- :func:`plot_r2_bars`: R² per scenario (groups) and model (bars), error bars = std over
  sessions and seeds, one dot per session and seed when the records are given, the
  noise ceiling as a marker; from ``table.csv`` or an in-memory
  :class:`rpnt.eval.tables.Table`.
- :func:`plot_label_efficiency`: R² against the number of labelled target trials, one
  panel per scenario, one line per model (the label-efficiency benchmark).
- :func:`plot_predictions`: predicted vs true vx, vy over one test trial (``--predictions``
  npz of ``rpnt evaluate``); scored bins shaded.
- :func:`plot_curves`: training curves of many runs, one line per scenario (mean over its
  runs, band = range), training loss and validation metric on separate panels.
- :func:`plot_attention`: RPNT's spatial (site x site) attention on a store's test
  trials, averaged over windows, time bins and heads, one panel per spatial layer.

:mod:`rpnt.eval.figure_set` draws a benchmark's set of them.

Every legend sits outside the axes, so it covers no data.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from rpnt.atomic import atomic_path
from rpnt.data.batches import eval_unit_choice
from rpnt.data.device import to_device
from rpnt.data.windows import covering_starts
from rpnt.decoders.base import load_decoder
from rpnt.errors import RpntError
from rpnt.eval.tables import Table
from rpnt.train.runlog import read_history

#: The table row drawn as a marker on the R² chart rather than as a bar.
CEILING = "ceiling"
#: The R² axis label per table metric (:data:`rpnt.eval.tables.METRICS`).
METRIC_LABELS = {"mean": "mean of vx, vy", "variance_weighted": "variance-weighted, FALCON"}
#: Axis labels of the two curve panels: (training, validation), by kind of run.
CURVE_LABELS = {
    "decoder": ("training loss: MSE of z-scored velocity",
                "validation: 1 − R² on the valid trials"),
    "pretrain": ("training loss: masked Poisson NLL + site contrast",
                 "validation: the same loss on valid trials"),
}


def _figure(width: float, height: float) -> Figure:
    # A bare Figure (no pyplot): no global state, no GUI backend, nothing to close.
    return Figure(figsize=(width, height), layout="constrained")


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fig.savefig(fh, format="png", dpi=120)
    return path


def plot_r2_bars(models: Sequence[str], scenarios: Sequence[str],
                 cells: dict[str, dict[str, dict[str, Any]]], out: str | Path,
                 title: str = "R² per scenario and model", metric: str = "mean") -> Path:
    """Grouped bars. ``cells[model][scenario]`` = {"mean", "std", "n", "note"} (as read by
    :func:`rpnt.eval.table_files.read_table_csv`), optionally "values" (one R² per session and
    seed, drawn as dots). The ``ceiling`` row is a marker across each group; models
    without any number are listed under the title with their reason instead of a bar."""
    def has_numbers(m: str) -> bool:
        return any(np.isfinite(cells[m][s]["mean"]) for s in scenarios)

    shown = [m for m in models if m != CEILING and has_numbers(m)]
    absent = [f"{m}: {cells[m][scenarios[0]]['note']}" for m in models
              if scenarios and not has_numbers(m)]
    fig = _figure(max(6.0, 1.7 * len(scenarios) + 3.0), 4.2)
    ax = fig.subplots()
    width = 0.8 / max(1, len(shown))
    x = np.arange(len(scenarios))
    rng = np.random.default_rng(0)  # horizontal jitter of the dots only
    for i, m in enumerate(shown):
        pos = x + (i - (len(shown) - 1) / 2) * width
        mean = np.array([cells[m][s]["mean"] for s in scenarios])
        std = np.array([cells[m][s]["std"] for s in scenarios])
        ax.bar(pos, np.nan_to_num(mean), width, yerr=np.nan_to_num(std), capsize=2,
               label=m, color=f"C{i % 10}", error_kw={"lw": 0.8})
        for p, s in zip(pos, scenarios, strict=True):
            vals = np.asarray(cells[m][s].get("values") or [], float)
            ax.plot(p + rng.uniform(-0.25, 0.25, vals.size) * width, vals, "o", ms=2.5,
                    mfc="white", mec="k", mew=0.5, zorder=3)
    if CEILING in models and has_numbers(CEILING):
        ceil = np.array([cells[CEILING][s]["mean"] for s in scenarios])
        ax.hlines(ceil, x - 0.45, x + 0.45, colors="k", linestyles="--", lw=1.2, zorder=4)
        ax.plot(x, ceil, "D", color="k", ms=6, zorder=5, label="noise ceiling (true rates)")
    if any(cells[m][s].get("values") for m in shown for s in scenarios):
        ax.plot([], [], "o", ms=2.5, mfc="white", mec="k", mew=0.5,
                label="one session × seed")
    ax.set_xticks(x, list(scenarios))
    ax.set_ylabel(f"R² on test trials ({METRIC_LABELS[metric]})")
    ax.axhline(0, color="k", lw=0.5)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.set_title(title + (f"\n(no result: {'; '.join(absent)})" if absent else ""),
                 fontsize=9 if absent else 11)
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: labels[i] not in shown)  # bars first
    fig.legend([handles[i] for i in order], [labels[i] for i in order],
               loc="outside right upper", fontsize=8, frameon=False)
    return _save(fig, out)


def plot_label_efficiency(table: Table, out: str | Path,
                          title: str = "R² against labelled trials") -> Path:
    """R² (mean ± std over sessions x seeds) against the number of labelled training
    trials of the target session, one panel per scenario, one line per model: pretrained
    RPNT rows solid, RPNT from scratch dashed black, the peers thin; the noise ceiling
    as a dotted line. Budgets sit at equal spacing (``all`` last)."""
    budgets = table.budgets
    x = np.arange(len(budgets))
    models = [m for m in table.models if m != CEILING]
    n = len(table.scenarios)
    cols = min(n, 2)
    rows = -(-n // cols)
    fig = _figure(4.6 * cols + 2.2, 3.4 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, scen in zip(axes, table.scenarios, strict=False):
        for i, m in enumerate(models):
            cells = [table.cell(m, scen, b) for b in budgets]
            mean = np.array([c.mean for c in cells])
            if not np.isfinite(mean).any():
                continue
            std = np.nan_to_num(np.array([c.std for c in cells]))
            style = ({"color": "k", "ls": "--", "lw": 1.6} if m == "rpnt_scratch" else
                     {"color": f"C{i % 10}", "ls": "-", "lw": 1.8} if m.startswith("rpnt")
                     else {"color": f"C{i % 10}", "ls": "-", "lw": 0.9, "alpha": 0.8})
            ax.errorbar(x, mean, yerr=std, marker="o", ms=3.5, capsize=2, label=m, **style)
        ceil = table.cell(CEILING, scen, budgets[-1])
        if ceil.values:
            ax.axhline(ceil.mean, color="k", ls=":", lw=1, label="noise ceiling")
        ax.set_xticks(x, [str(b) for b in budgets])
        ax.set_title(scen, fontsize=10)
        ax.set_xlabel("labelled training trials of the target session")
        ax.set_ylabel(f"test R² ({METRIC_LABELS[table.metric]})")
        ax.grid(alpha=0.3)
    for ax in axes[n:]:
        ax.set_visible(False)
    handles, labels = {}, []
    for ax in axes[:n]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    fig.legend([handles[lab] for lab in labels], labels, loc="outside right upper",
               fontsize=8, frameon=False)
    fig.suptitle(f"{title} (error bars: std over sessions × seeds)", fontsize=10)
    return _save(fig, out)


def load_predictions(path: str | Path) -> dict[str, Any]:
    """The arrays of a predictions npz plus its ``meta`` dict (skipped files: RpntError)."""
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    if "skipped" in data:
        raise RpntError(f"{path}: model was skipped ({data['skipped']}); no predictions")
    data["meta"] = json.loads(str(data["meta"])) if "meta" in data else {}
    return data


def plot_predictions(path: str | Path, out: str | Path, trial: int | None = None) -> Path:
    """Predicted vs true velocity of one test trial (default: the one with most scored
    bins) from a predictions npz."""
    d = load_predictions(path)
    trials, counts = np.unique(d["trial"][d["scored"]], return_counts=True)
    if trials.size == 0:
        raise RpntError(f"{path}: no scored bin to plot")
    if trial is None:
        trial = int(trials[np.argmax(counts)])
    sel = d["trial"] == trial
    if not sel.any():
        raise RpntError(f"{path}: trial {trial} is not among its test trials "
                        f"{sorted(set(d['trial'].tolist()))}")
    t = d["time"][sel] - d["time"][sel][0]
    names = d["meta"].get("covariates")
    n_axis = d["true"].shape[1]
    fig = _figure(7.5, 4.8 if n_axis <= 3 else min(1.2 * n_axis, 16.0))
    axes = np.atleast_1d(fig.subplots(n_axis, 1, sharex=True))
    for a, ax in enumerate(axes):
        ax.plot(t, d["true"][sel, a], "k", lw=1.5, label="true")
        ax.plot(t, d["pred"][sel, a], "C1", lw=1.2, label="predicted (stitched)")
        ax.fill_between(t, 0, 1, where=d["scored"][sel], transform=ax.get_xaxis_transform(),
                        color="C0", alpha=0.08, label="scored bins")
        if names:  # a store of other covariates (FALCON): their names and units
            unit = d["meta"].get("covariate_units")
            ax.set_ylabel(f"{names[a]}" + (f" ({unit})" if unit else ""), fontsize=7)
        else:
            ax.set_ylabel(f"v{'xyz'[a] if a < 3 else a} (cm/s)")
    axes[-1].set_xlabel("time in trial (s)")
    meta = d["meta"]
    fig.suptitle(f"{meta.get('model', '?')} · {meta.get('scenario', '')} · "
                 f"{meta.get('session', d['session'])} · trial {trial}", fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=8, frameon=False)
    return _save(fig, out)


def _metrics_file(run: str | Path) -> Path:
    run = Path(run)
    path = run / "metrics.jsonl" if run.is_dir() else run
    if not path.is_file():
        raise RpntError(f"{run}: no metrics.jsonl (pass a trained model directory or the "
                        "file itself)")
    return path


def _band(series: Sequence[Sequence[tuple[int, float]]]) -> tuple[np.ndarray, ...]:
    """(steps, mean, low, high) over runs; each run a list of (step, value). A step's
    statistics use the runs that reached it (early stopping ends some runs sooner)."""
    by_step: dict[int, list[float]] = {}
    for run in series:
        for step, value in run:
            by_step.setdefault(int(step), []).append(float(value))
    steps = np.array(sorted(by_step))
    vals = [np.array(by_step[s]) for s in steps]
    return (steps, np.array([v.mean() for v in vals]), np.array([v.min() for v in vals]),
            np.array([v.max() for v in vals]))


def plot_curves(runs: Sequence[str | Path], out: str | Path,
                groups: Sequence[str] | None = None, title: str = "training curves",
                kind: str = "decoder") -> Path:
    """Training curves of ``runs`` (model directories or ``metrics.jsonl`` files): one
    line per group (e.g. scenario; default one per run) = the mean over its runs at each
    logged step, the band = their range; training loss left, validation metric right.
    ``kind`` (``decoder`` or ``pretrain``) names the two quantities (:data:`CURVE_LABELS`).
    """
    groups = list(groups) if groups is not None else [Path(r).name for r in runs]
    series: dict[str, tuple[list, list]] = {}
    for run, group in zip(runs, groups, strict=True):
        hist = read_history(_metrics_file(run))
        train, val = series.setdefault(group, ([], []))
        train.append([(r["step"], r["loss"]) for r in hist if "loss" in r])
        val.append([(r["step"], r["val_loss"]) for r in hist if "val_loss" in r])
    fig = _figure(10.0, 3.8)
    axes = fig.subplots(1, 2, sharex=True)
    for i, (group, (train, val)) in enumerate(series.items()):
        color = f"C{i % 10}"
        label = f"{group} ({len(train)} run{'s' if len(train) > 1 else ''})"
        for ax, runs_xy, marker in ((axes[0], train, None), (axes[1], val, ".")):
            if not any(runs_xy):
                continue
            steps, mean, lo, hi = _band(runs_xy)
            ax.plot(steps, mean, color=color, lw=1.4, marker=marker, label=label)
            if len(runs_xy) > 1:
                ax.fill_between(steps, lo, hi, color=color, alpha=0.18, lw=0)
    for ax, ylabel in zip(axes, CURVE_LABELS[kind], strict=True):
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel, fontsize=9)
        if not ax.lines:
            ax.text(0.5, 0.5, "no records", transform=ax.transAxes, ha="center",
                    color="0.5")
    fig.suptitle(f"{title} (line: mean over runs; band: min to max)", fontsize=10)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside right upper", fontsize=8, frameon=False)
    return _save(fig, out)


def spatial_attention(model_dir: str | Path, session: Any, split: str = "test",
                      max_windows: int = 256) -> tuple[np.ndarray, list[str]]:
    """Mean spatial attention of an RPNT decoder over ``split`` trials of ``session``.

    Returns (n_layers, S, S) (query site, key site) averaged over windows, time bins and
    heads, and the site names. RpntError if the model has no spatial attention (a single
    site or no spatial layers).
    """
    dec = load_decoder(model_dir)
    if dec.kind != "rpnt":
        raise RpntError(f"{model_dir}: attention maps need an RPNT decoder, not {dec.kind!r}")
    length = int(dec.config.window)
    starts = covering_starts(session.trial_bins(split), length, max(1, length // 2))
    if starts.size == 0:
        raise RpntError(f"session {session.session}: no {split} trial to draw attention on")
    starts = starts[:max_windows]
    sw = dec.windows(session, length)
    units = eval_unit_choice(sw, starts.size, seed=int(dec.hparams.get("eval_seed", 0)))
    batch = to_device(sw.make_batch(starts, units, with_velocity=False),
                      dec.vel_mean.device)
    with torch.no_grad():
        out = dec.model.encode(batch["counts"], batch["unit_mask"], batch["coords"],
                               batch["site_mask"], return_attention=True,
                               readin=batch["readin"])
    if not out.spatial_attn:
        raise RpntError(f"{model_dir}: this RPNT has no spatial attention (single site or no "
                        "spatial layers); attention maps need a multi-site model")
    maps = np.stack([a.float().mean(dim=(0, 1, 2)).cpu().numpy() for a in out.spatial_attn])
    return maps, list(session.sites)


def plot_attention(model_dir: str | Path, session: Any, out: str | Path,
                   split: str = "test") -> Path:
    """Heatmaps of :func:`spatial_attention`, one panel per spatial layer."""
    maps, sites = spatial_attention(model_dir, session, split)
    n = maps.shape[0]
    sites = sites + [f"pad{i}" for i in range(maps.shape[1] - len(sites))]
    fig = _figure(3.6 * n + 0.8, 3.6)
    axes = fig.subplots(1, n, squeeze=False)
    for i, ax in enumerate(axes[0]):
        im = ax.imshow(maps[i], vmin=0, vmax=max(1e-6, float(maps.max())), cmap="viridis")
        ax.set_xticks(range(len(sites)), sites, rotation=60, fontsize=7)
        ax.set_yticks(range(len(sites)), sites, fontsize=7)
        ax.set_xlabel("key site")
        ax.set_title(f"spatial layer {i}", fontsize=9)
    axes[0][0].set_ylabel("query site")
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="attention")
    fig.suptitle(f"spatial attention, {session.session} ({split} trials)", fontsize=9)
    return _save(fig, out)

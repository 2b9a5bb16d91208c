"""Realism statistics of a simulated dandiset folder, measured through the real pipeline.

Each NWB file is ingested with :func:`rpnt.ingest.core.ingest_file` (into a temporary
store) and loaded as :class:`SessionData`, so the numbers describe exactly what the
benchmark decoders see. Per session:

- firing rates: percentiles of the units' mean rates, fraction below 1 Hz / above 60 Hz;
- Fano factor: var/mean of spike counts in [go cue, go cue + 300 ms] across rewarded
  trials to the same target (center-out only), median over units with mean count >= 0.5;
- dimensionality: fraction of variance of smoothed sqrt counts (20 ms bins, Gaussian
  sigma 40 ms, inside trials) explained by the top 5 and 10 principal components, and
  the same for the sqrt true rates (the latent dimensionality without spiking noise);
- Wiener R²: causal lagged ridge (:mod:`rpnt.linear`, 10 lags) on 20 ms counts, trained
  on training bins, scored on test bins — next to the noise ceiling (the same decoder on
  the true rates, :func:`rpnt.sim.ceiling.noise_ceiling`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter1d
from tqdm import tqdm

from rpnt.atomic import write_json
from rpnt.data.session import SessionData
from rpnt.errors import RpntError
from rpnt.ingest.core import ingest_file
from rpnt.linear import fit_lagged_ridge
from rpnt.scoring.metrics import r2_report
from rpnt.scoring.stitch import scored_mask
from rpnt.sim.ceiling import bin_rates, load_truth, noise_ceiling
from rpnt.store import load_session

WIENER_LAGS = 10


def fano_factor(truth: dict[str, np.ndarray], window_s: float = 0.3) -> float:
    """Median within-condition Fano factor after the go cue (NaN for random target)."""
    if "trial_target_id" not in truth:
        return float("nan")
    ok = (truth["trial_result"] == "R") & np.isfinite(truth["trial_go_cue"])
    go, target = truth["trial_go_cue"][ok], truth["trial_target_id"][ok]
    st, su = truth["spike_times"], truth["spike_unit"]
    n_unit = truth["rates"].shape[1]
    # counts (n_trial, n_unit) in each trial's window, vectorised via searchsorted per unit
    order = np.lexsort((st, su))
    st, su = st[order], su[order]
    bounds = np.searchsorted(su, np.arange(n_unit + 1))
    counts = np.empty((go.size, n_unit))
    for u in range(n_unit):  # one searchsorted per unit over all trials
        times = st[bounds[u]:bounds[u + 1]]
        counts[:, u] = (np.searchsorted(times, go + window_s)
                        - np.searchsorted(times, go))
    ratios = []
    for t in np.unique(target):
        c = counts[target == t]
        if c.shape[0] < 3:
            continue
        m, v = c.mean(0), c.var(0, ddof=1)
        keep = m >= 0.5
        ratios.append(v[keep] / m[keep])
    return float(np.median(np.concatenate(ratios))) if ratios else float("nan")


def pca_fraction(session: SessionData, ks: tuple[int, ...] = (5, 10),
                 rates: np.ndarray | None = None) -> dict[str, float]:
    """Fraction of variance in trials explained by the top-k principal components.

    Of smoothed sqrt counts by default; of sqrt ``rates`` (n_time, n_unit), e.g. the true
    rates binned like the session, when given (no smoothing: rates are not noisy).
    """
    if rates is None:
        x = np.sqrt(session.spike_counts.astype(np.float64))
        x = gaussian_filter1d(x, 0.04 / session.bin_size_s, axis=0)
    else:
        x = np.sqrt(np.asarray(rates, dtype=np.float64))
    inside = np.zeros(session.n_time, bool)
    for split in ("train", "valid", "test"):
        inside |= session.trial_bins(split)
    x = x[inside] - x[inside].mean(0)
    ev = np.linalg.eigvalsh(np.cov(x, rowvar=False))[::-1]
    ev = np.clip(ev, 0, None)
    return {f"top{k}": float(ev[:k].sum() / ev.sum()) for k in ks}


def wiener_r2(session: SessionData, lags: int = WIENER_LAGS) -> dict[str, float]:
    """Test R² of causal lagged ridge on the binned counts (the Wiener filter)."""
    model = fit_lagged_ridge(session.spike_counts, session.velocity,
                             session.split_mask("train"), session.split_mask("valid"),
                             lags=lags)
    test = scored_mask(session, "test")
    return r2_report(session.velocity[test], model.predict(session.spike_counts)[test],
                     session.covariate_names)


def session_stats(session: SessionData, truth_path: Path) -> dict[str, Any]:
    truth = load_truth(truth_path)
    true_rates = bin_rates(truth["time"], truth["rates"], float(truth["dt"]), session.time,
                           session.bin_size_s)
    dur = session.n_time * session.bin_size_s
    rates = session.spike_counts.sum(0) / dur
    return {
        "session": session.session,
        "n_units": session.n_unit,
        "minutes": dur / 60,
        "rate_pct_hz": {str(p): float(v) for p, v in
                        zip((5, 25, 50, 75, 95), np.percentile(rates, [5, 25, 50, 75, 95]),
                            strict=True)},
        "frac_below_1hz": float((rates < 1).mean()),
        "frac_above_60hz": float((rates > 60).mean()),
        "fano": fano_factor(truth),
        "pca": pca_fraction(session),
        "pca_true_rates": pca_fraction(session, rates=true_rates),
        "wiener_r2": wiener_r2(session),
        "ceiling_r2": noise_ceiling(session, truth_path)["r2"],
    }


def dataset_stats(folder: str | Path, progress: bool = True,
                  ceiling_only: bool = False) -> list[dict[str, Any]]:
    """Stats of every session of a simulated folder (ingested into a temporary store).

    With ``ceiling_only`` each entry holds just the session and its noise ceiling.
    """
    folder = Path(folder)
    nwbs = sorted(folder.glob("sub-*/*.nwb"))
    if not nwbs:
        raise RpntError(f"{folder}: no sub-*/*.nwb files; pass a folder written by "
                        "rpnt simulate")
    out = []
    with tempfile.TemporaryDirectory(prefix="rpnt-realism-") as tmp:
        for nwb in tqdm(nwbs, desc="realism", unit="session", disable=not progress):
            session_id = nwb.name.replace("_behavior+ecephys.nwb", "")
            truth = folder / "derivatives" / "ground-truth" / f"{session_id}.npz"
            if not truth.exists():
                raise RpntError(f"{truth} is missing; --realism needs a simulated folder "
                                "with derivatives/ground-truth")
            store = ingest_file(nwb, Path(tmp) / f"{session_id}.zarr")
            session = load_session(store)
            if ceiling_only:
                out.append({"session": session_id,
                            "ceiling_r2": noise_ceiling(session, truth)["r2"]})
            else:
                out.append(session_stats(session, truth))
    return out


def format_table(stats: list[dict[str, Any]]) -> str:
    head = ("| session | units | min | rate p5/p50/p95 (Hz) | <1 Hz | Fano | PCA top5/top10 "
            "| true-rate PCA top5/top10 | Wiener R² | ceiling R² |")
    lines = [head, "|" + "---|" * 10]
    for s in stats:
        r = s["rate_pct_hz"]
        lines.append(
            f"| {s['session']} | {s['n_units']} | {s['minutes']:.1f} | "
            f"{r['5']:.1f}/{r['50']:.1f}/{r['95']:.1f} | {s['frac_below_1hz']:.2f} | "
            f"{s['fano']:.2f} | {s['pca']['top5']:.2f}/{s['pca']['top10']:.2f} | "
            f"{s['pca_true_rates']['top5']:.2f}/{s['pca_true_rates']['top10']:.2f} | "
            f"{s['wiener_r2']['mean']:.3f} | {s['ceiling_r2']['mean']:.3f} |")
    w = np.array([s["wiener_r2"]["mean"] for s in stats])
    c = np.array([s["ceiling_r2"]["mean"] for s in stats])
    lines.append(f"\nmean Wiener R² {w.mean():.3f} (range {w.min():.3f}-{w.max():.3f}); "
                 f"mean ceiling R² {c.mean():.3f}; mean gap {np.mean(c - w):.3f}")
    return "\n".join(lines)


def realism_report(folder: str | Path, json_out: str | Path | None = None,
                   progress: bool = True, ceiling_only: bool = False) -> list[dict[str, Any]]:
    """Print the realism table of ``folder`` (and write JSON to ``json_out``)."""
    stats = dataset_stats(folder, progress=progress, ceiling_only=ceiling_only)
    if ceiling_only:
        lines = ["| session | ceiling R² vx | vy | mean |", "|---|---|---|---|"]
        lines += [f"| {s['session']} | {s['ceiling_r2']['vx']:.3f} | "
                  f"{s['ceiling_r2']['vy']:.3f} | {s['ceiling_r2']['mean']:.3f} |"
                  for s in stats]
        print("\n".join(lines))
    else:
        print(format_table(stats))
    if json_out:
        write_json(json_out, {"folder": str(folder), "sessions": stats})
    return stats

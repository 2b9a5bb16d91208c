"""A benchmark's figures, drawn together into one folder (``rpnt figures --out-dir``, the
workflow's figures rule): the R² chart and label-efficiency curves of its table, the
predictions and spatial attention of its example model, the training curves of its runs,
and, for a scaling benchmark, R² against pretraining sessions."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rpnt.atomic import atomic_path
from rpnt.data.scenarios import apply_scenario_units
from rpnt.errors import RpntError
from rpnt.eval.figures import (
    plot_attention,
    plot_curves,
    plot_label_efficiency,
    plot_predictions,
    plot_r2_bars,
)
from rpnt.eval.scaling import plot_scaling, scaling_groups
from rpnt.eval.tables import build_table, load_records, table_metric
from rpnt.rows import row_order
from rpnt.store import load_session


def _table_cells(table: Any) -> dict[str, dict[str, dict[str, Any]]]:
    return {m: {s: {"mean": table.cell(m, s).mean, "std": table.cell(m, s).std,
                    "n": table.cell(m, s).n, "note": table.cell(m, s).text(),
                    "values": list(table.cell(m, s).values)}
                for s in table.scenarios} for m in table.models}


def _run_meta(run: Path) -> dict[str, Any]:
    path = run / "meta.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def curve_group(run: str | Path, meta: dict[str, Any] | None = None) -> str:
    """The line a run joins in :func:`plot_curves`: its scenario (from ``meta``, else the
    meta.json next to its metrics.jsonl), else its directory name."""
    run = Path(run)
    if meta is None:
        meta = _run_meta(run if run.is_dir() else run.parent)
    return str(meta.get("scenario") or (run.name if run.is_dir() else run.parent.name))


def example_model(cfg: dict[str, Any], models: Sequence[str | None]) -> str | None:
    """The model drawn in the predictions and attention figures: ``figures.example_model``,
    else the last RPNT row (table order) among ``models``, else the first of them."""
    wanted = (cfg.get("figures") or {}).get("example_model")
    names = [m for m in dict.fromkeys(models) if m]
    if wanted or not names:
        return wanted
    rpnt = [m for m in row_order(names, list(cfg.get("models") or []))
            if m.startswith("rpnt") and not m.endswith("pretrain")]
    return rpnt[-1] if rpnt else names[0]


def write_all_figures(out_dir: str | Path, config: dict[str, Any] | None,
                      metrics: Sequence[str | Path] = (),
                      predictions: Sequence[str | Path] = (),
                      runs: Sequence[str | Path] = (), attention: bool = True) -> list[Path]:
    """Every benchmark figure into ``out_dir`` (written as one directory, atomically).

    ``r2.png`` from the metrics; ``predictions_<scenario>.png`` for the config's
    :func:`example_model`; ``label_efficiency.png`` when there are several label budgets;
    ``scaling.png`` with scaling scenarios (rpnt.eval.scaling);
    ``curves_<model>.png`` per model over its runs; ``attention_<scenario>.png`` for RPNT
    runs of the example model with spatial attention (multi-site data), on the store
    named in meta.json or in the run's metrics record (``store_path``).
    """
    log = logging.getLogger(__name__)
    cfg = config or {}
    written: list[str] = []
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        records = load_records(metrics, table_metric(config)) if metrics else []
        # where each run's store is (rpnt evaluate records it), for the attention maps
        stores = {(r.get("model"), r.get("scenario"), r.get("session"), r.get("seed")):
                  r["store_path"] for r in records if r.get("store_path")}
        if metrics:
            table = build_table(records, config)
            budget = "" if table.budgets == ["all"] else f", {table.budgets[-1]} trials"
            plot_r2_bars(table.models, table.scenarios, _table_cells(table), tmp / "r2.png",
                         title=f"R² per scenario and model ({cfg.get('benchmark', '')}"
                               f"{budget})", metric=table.metric)
            written.append("r2.png")
            if len(table.budgets) > 1:
                plot_label_efficiency(table, tmp / "label_efficiency.png",
                                      title=f"R² against labelled trials "
                                            f"({cfg.get('benchmark', '')})")
                written.append("label_efficiency.png")
        preds = []
        for p in sorted(map(str, predictions)):
            with np.load(p) as z:
                if "skipped" in z.files:
                    continue
                meta = json.loads(str(z["meta"])) if "meta" in z.files else {}
            preds.append((p, meta))
        # each run directory's meta.json, read once
        metas = {r: _run_meta(r) for r in map(Path, runs) if r.is_dir()}
        groups: dict[str, list[tuple[Path, str]]] = {}  # model -> (run, its scenario)
        for run in map(Path, runs):
            if not (run / "metrics.jsonl").is_file() and not run.is_file():
                log.info("no metrics.jsonl in %s; no curve", run)
                continue
            meta = metas.get(run, {})
            model = str(meta.get("model") or "pretrain")
            groups.setdefault(model, []).append((run, curve_group(run, metas.get(run))))
        if metrics:  # R² against pretraining sessions (a scaling benchmark only)
            if plot_scaling(table, scaling_groups(cfg, [m for m in metas.values()
                                                        if m.get("stage") == "pretrain"]),
                            tmp / "scaling.png"):
                written.append("scaling.png")
        wanted = example_model(cfg, [m.get("model") for _, m in preds] + list(groups))
        done: set[str] = set()
        for p, meta in preds:
            scen = str(meta.get("scenario"))
            if meta.get("model") == wanted and scen not in done:
                plot_predictions(p, tmp / f"predictions_{scen}.png")
                written.append(f"predictions_{scen}.png")
                done.add(scen)
        for model, items in sorted(groups.items()):
            plot_curves([r for r, _ in items], tmp / f"curves_{model}.png",
                        groups=[g for _, g in items], title=f"training curves: {model}",
                        kind="pretrain" if model.endswith("pretrain") else "decoder")
            written.append(f"curves_{model}.png")
        if attention:
            written += _attention_figures(tmp, groups.get(wanted, []), metas, cfg, stores,
                                          log)
    return [Path(out_dir) / w for w in written]


def _attention_figures(tmp: Path, runs: list[tuple[Path, str]],
                       metas: dict[Path, dict[str, Any]], cfg: dict[str, Any],
                       stores: dict[tuple, str], log: Any) -> list[str]:
    out, done = [], set()
    for run, _ in runs:
        meta = metas[run] if run in metas else _run_meta(run)
        scen = str(meta.get("scenario"))
        store = meta.get("store") or stores.get(
            (meta.get("model"), meta.get("scenario"), meta.get("session"), meta.get("seed")))
        if meta.get("kind") != "rpnt" or not store or scen in done or not Path(store).exists():
            continue
        try:
            session = load_session(store)
            if scen in (cfg.get("scenarios") or {}):
                session = apply_scenario_units(session, cfg, scen)
            if len(session.sites) < 2:
                continue
            plot_attention(run, session, tmp / f"attention_{scen}.png")
        except RpntError as exc:
            log.warning("no attention map for %s: %s", run, exc)
            continue
        out.append(f"attention_{scen}.png")
        done.add(scen)
    return out

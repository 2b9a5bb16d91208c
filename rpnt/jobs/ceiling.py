"""The noise-ceiling job (``rpnt ceiling``): decoding from the true rates of simulated
sessions, as metrics records with model ``ceiling`` (one process for many sessions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rpnt.atomic import check_overwrite
from rpnt.configfile import load_yaml
from rpnt.data.scenarios import apply_scenario_units
from rpnt.errors import RpntError
from rpnt.eval.evaluate import write_metrics
from rpnt.provenance import provenance, sha256_file
from rpnt.sim.ceiling import noise_ceiling
from rpnt.store import load_session

#: one ceiling asked for: (store, truth, out, extra record fields)
CeilingRun = tuple[str | Path, str | Path, str | Path, dict[str, Any]]


def ceiling_job(runs: list[CeilingRun], *, scenario: str | None = None,
                config: str | Path | None = None, lags: int = 10,
                force: bool = False) -> list[dict[str, Any]]:
    """Write the ceiling record of every run; a session's ceiling is computed once however
    many outputs name it. Every output is checked before anything is computed."""
    for _, _, out, _ in runs:
        check_overwrite(out, force)
    cfg = None
    if scenario:
        if not config:
            raise RpntError("--scenario needs --config CFG.yaml (the scenarios section)")
        cfg = load_yaml(config)
    done: dict[tuple[str, str], tuple] = {}  # (store, truth) -> what the records need
    records = []
    for store, truth, out, tags in runs:
        tags = dict(tags)
        if scenario:
            tags["scenario"] = scenario
        key = (str(store), str(truth))
        if key not in done:
            # The ceiling sees the same units as the scenario's decoders (e.g. PMd only).
            session = apply_scenario_units(load_session(store), cfg, scenario)
            done[key] = (session.session, session.n_unit,
                         noise_ceiling(session, truth, lags=lags), sha256_file(truth))
        session_id, n_units, res, truth_sha = done[key]
        record = {
            "model": "ceiling", "scenario": tags.pop("scenario", None),
            "session": session_id, "seed": tags.pop("seed", None),
            "r2": res["r2"], "n_bins": res["n_bins"], "n_trials": res["n_trials"],
            "n_units": n_units,
            "split": "test", "lambda": res["lambda"], "lags": res["lags"],
        }
        record.update({k: v for k, v in tags.items() if k not in record})
        record["provenance"] = provenance(
            {"lags": lags}, store=str(store), truth=str(truth), truth_sha256=truth_sha)
        write_metrics(out, record)
        print(f"{session_id}: ceiling R² {res['r2']['mean']:.3f} "
              f"({', '.join(f'{k} {v:.3f}' for k, v in res['r2'].items() if k != 'mean')})"
              f" -> {out}")
        records.append(record)
    return records

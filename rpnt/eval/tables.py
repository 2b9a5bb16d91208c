"""The benchmark table: mean ± std of R² per model, scenario and label budget, paired
differences against RPNT from scratch and the GRU, and the ridge probe of pretraining.

Each cell pools every metrics record of one model, scenario and budget over sessions and
seeds: ``mean ± std (n=...)`` of the records' ``r2.mean`` (or ``r2.variance_weighted``,
FALCON's metric, when the config says ``metric: variance_weighted``), with the sample standard
deviation (ddof = 1; shown as "n/a" for a single record). Records whose R² is undefined
(NaN, a constant test target) are left out and counted in the cell's note. Rows for
models without results say why: a skip record's reason (e.g. "torch-brain not
installed"), "not installed" for POYO when torch-brain cannot be imported, otherwise "no
results". A record without a ``budget`` counts as budget ``all``.

A paired difference compares two models on the same (session, seed) runs of a scenario
and budget, i.e. on the same labelled trials and test trials: mean ± std of the
per-run differences of R², over the runs both models have.

Outputs (written atomically): ``table.md`` (the table: rows = models, columns = scenarios
when the benchmark has one budget, else one table per scenario with a column per budget;
then the paired differences, the probe and a provenance block); ``table.csv`` (one row per
model; per column (``<scenario>``, or ``<scenario>@<budget>`` with several budgets) the
columns ``:mean``, ``:std``, ``:n``, ``:note``); ``differences.csv`` (scenario, budget,
model, reference, mean, std, n); ``probe.csv`` (rpnt.eval.probes: one row per
pretraining, seed and probe session, and per target, budget and seed); ``scaling.csv``
(rpnt.eval.scaling: R² against the pretraining corpus, header only without a scaling
scenario); with records of ``rpnt evaluate --stream``
a "Decoding online" section and ``latency.csv`` (:mod:`rpnt.eval.latency_table`).
The CSV files and the writing of them all: :mod:`rpnt.eval.table_files`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rpnt import provenance as prov
from rpnt.data.budget import ALL
from rpnt.errors import RpntError
from rpnt.eval.cells import Cell
from rpnt.provenance import config_hash, git_commit, package_versions
from rpnt.rows import SCRATCH, row_order

#: The rows every other row is compared with, run by run.
REFERENCES = (SCRATCH, "gru")
#: metric (the config's ``metric``, a key of a record's ``r2``) -> what the table says
METRICS = {
    "mean": "R² of velocity (mean of vx and vy)",
    "variance_weighted": "R² of the decoded covariates, variance-weighted over the "
                         "covariates per session (FALCON's metric)",
}


def table_metric(config: dict[str, Any] | None) -> str:
    """The key of ``r2`` a table pools: the config's ``metric`` (default ``mean``)."""
    metric = str((config or {}).get("metric") or "mean")
    if metric not in METRICS:
        raise RpntError(f"config: metric {metric!r} is not one of {sorted(METRICS)}")
    return metric


def budget_key(budget: Any) -> tuple[int, int]:
    """Sort key of a budget: numbers ascending, then ``all``."""
    return (1, 0) if str(budget) == ALL else (0, int(budget))


def load_records(paths: Sequence[str | Path], metric: str = "mean") -> list[dict[str, Any]]:
    """Read metrics JSON files (one record each, or a list of records) that carry
    ``r2[metric]`` (or a skip)."""
    out = []
    for p in paths:
        try:
            obj = json.loads(Path(p).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise RpntError(f"{p}: cannot read metrics JSON ({exc}); re-run rpnt evaluate"
                            ) from exc
        for rec in obj if isinstance(obj, list) else [obj]:
            if not isinstance(rec, dict) or "model" not in rec:
                raise RpntError(f"{p}: not a metrics record (no 'model'); pass files written "
                                "by rpnt evaluate or rpnt ceiling")
            if rec.get("skipped") is None:
                r2 = rec.get("r2")
                if not isinstance(r2, dict) or metric not in r2:
                    raise RpntError(f"{p}: metrics record without r2.{metric}; re-run rpnt "
                                    "evaluate" + ("" if metric == "mean" else " on a store "
                                                  "whose adapter records it (FALCON)"))
            out.append({**rec, "_path": str(p)})
    return out


def _budget(rec: dict[str, Any]) -> str:
    return str(rec.get("budget", ALL))


def summarise(records: Sequence[dict[str, Any]],
              metric: str = "mean") -> dict[tuple[str, str, str], Cell]:
    """Pool records' ``r2[metric]`` into cells keyed by (model, scenario, budget).

    A (model, scenario, budget, session, seed) seen twice is an error: it would be
    counted twice.
    """
    cells: dict[tuple[str, str, str], Cell] = {}
    seen: dict[tuple, str] = {}
    for rec in records:
        model, scenario, budget = str(rec["model"]), str(rec.get("scenario")), _budget(rec)
        key = (model, scenario, budget, rec.get("session"), rec.get("seed"))
        if key in seen:
            raise RpntError(f"{rec['_path']}: duplicate of {seen[key]} (model {model}, "
                            f"scenario {scenario}, budget {budget}, session {key[3]}, "
                            f"seed {key[4]}); pass each metrics file once")
        seen[key] = rec["_path"]
        cell = cells.setdefault((model, scenario, budget), Cell())
        if rec.get("skipped") is not None:
            cell.skipped = str(rec["skipped"])
            continue
        value = rec["r2"][metric]
        if value is None or not math.isfinite(float(value)):
            cell.undefined += 1
            continue
        cell.values.append(float(value))
        cell.runs[(str(rec.get("session")), rec.get("seed"))] = float(value)
    return cells


@dataclass
class Table:
    """The assembled table: ordered rows, columns and budgets, and the pooled cells."""

    models: list[str]
    scenarios: list[str]
    budgets: list[str]
    cells: dict[tuple[str, str, str], Cell]
    row_notes: dict[str, str]  #: model -> reason when the model has no result at all
    metric: str = "mean"  #: the key of the records' ``r2`` pooled (:data:`METRICS`)

    def cell(self, model: str, scenario: str, budget: str | None = None) -> Cell:
        """The cell of ``model`` in ``scenario`` at ``budget`` (default: the last budget,
        ``all`` when the benchmark has it)."""
        budget = self.budgets[-1] if budget is None else str(budget)
        c = self.cells.get((model, scenario, budget))
        if c is None:
            c = Cell(skipped=self.row_notes.get(model))
        return c

    def columns(self) -> list[tuple[str, str, str]]:
        """(name, scenario, budget) of every column of table.csv: ``<scenario>`` with one
        budget, else ``<scenario>@<budget>``."""
        if len(self.budgets) == 1:
            return [(s, s, self.budgets[0]) for s in self.scenarios]
        return [(f"{s}@{b}", s, b) for s in self.scenarios for b in self.budgets]

    def difference(self, model: str, reference: str, scenario: str, budget: str) -> Cell:
        """Paired differences ``model - reference`` over the (session, seed) runs both
        have in ``scenario`` at ``budget``."""
        a, b = self.cell(model, scenario, budget), self.cell(reference, scenario, budget)
        out = Cell()
        for run in sorted(set(a.runs) & set(b.runs), key=str):
            out.values.append(a.runs[run] - b.runs[run])
            out.runs[run] = out.values[-1]
        return out


def build_table(records: Sequence[dict[str, Any]],
                config: dict[str, Any] | None = None) -> Table:
    """Rows: the models present in the records or expected by ``config`` (its ``models``
    list, plus ``ceiling`` when ``ceiling: true``), in :func:`rpnt.rows.row_order`.
    Columns: the config's scenarios in order, else the scenarios of the records (sorted).
    Budgets: the config's ``budgets`` and those of the records (numbers, then all); a
    row the config's ``model_budgets`` (``model_scenarios``) trains at some budgets
    (scenarios) only says "not run" at the others."""
    metric = table_metric(config)
    cells = summarise(records, metric)
    present = {m for m, _, _ in cells}
    expected: set[str] = set()
    if config is not None:
        expected |= set(config.get("models") or [])
        if config.get("ceiling"):
            expected.add("ceiling")
    models = row_order(sorted(present | expected), list((config or {}).get("models") or []))
    if config is not None and config.get("scenarios"):
        scenarios = list(config["scenarios"])
        scenarios += sorted({s for _, s, _ in cells} - set(scenarios))
    else:
        scenarios = sorted({s for _, s, _ in cells})
    # the noise ceiling has no budget: it is not trained
    budgets = {str(b) for b in (config or {}).get("budgets") or []}
    budgets |= {b for m, _, b in cells if m != "ceiling"}
    budgets = sorted(budgets or {ALL}, key=budget_key)
    for (m, sc, _b), c in list(cells.items()):
        if m == "ceiling":  # shown in every budget column
            for other in budgets:
                cells.setdefault((m, sc, other), c)
    for m, scens in ((config or {}).get("model_scenarios") or {}).items():
        for sc in scenarios:
            for b in budgets:
                if sc not in scens:  # the config trains this row in other scenarios only
                    cells.setdefault((m, sc, b), Cell(skipped="not run"))
    for m, bs in ((config or {}).get("model_budgets") or {}).items():
        planned = {str(b) for b in bs}
        for sc in scenarios:
            for b in budgets:
                if b not in planned:  # the config trains this row at other budgets only
                    cells.setdefault((m, sc, b), Cell(skipped="not run"))
    notes: dict[str, str] = {}
    for m in models:
        if m in present:
            continue
        if m == "poyo" and not prov.poyo_available():
            notes[m] = "not installed"
        else:
            notes[m] = "no results"
    return Table(models=models, scenarios=scenarios, budgets=budgets, cells=cells,
                 row_notes=notes, metric=metric)


def provenance_block(records: Sequence[dict[str, Any]],
                     config: dict[str, Any] | None) -> dict[str, Any]:
    """What produced the table: commits, config hash, datasets, package versions."""
    stores = {json.dumps(rec.get("store") or {}, sort_keys=True, default=str)
              for rec in records}
    datasets = sorted(
        {(s.get("dataset", "?"), str(s.get("dandiset_id", "?")),
          str(s.get("dandiset_version", "?"))) for s in map(json.loads, stores) if s})
    commits = sorted({str((rec.get("provenance") or {}).get("git_commit", "unknown"))
                      for rec in records})
    return {
        "table_git_commit": git_commit(),
        "metrics_git_commits": commits,
        "config_hash": config_hash(config) if config is not None else None,
        "datasets": [{"dataset": d, "dandiset_id": i, "dandiset_version": v}
                     for d, i, v in datasets],
        "packages": package_versions(),
        "n_records": len(records),
    }


def _budget_name(budget: str) -> str:
    return "all trials" if budget == ALL else f"{budget} trials"


def _grid(rows: list[str], header: list[str], cell: Any) -> list[str]:
    lines = ["| model | " + " | ".join(header) + " |", "|---|" + "---|" * len(header)]
    lines += [f"| {m} | " + " | ".join(cell(m, i) for i in range(len(header))) + " |"
              for m in rows]
    return lines


def _main_tables(table: Table) -> list[str]:
    if len(table.budgets) == 1:
        b = table.budgets[0]
        head = [] if b == ALL else [f"Labelled trials per target session: {b}.", ""]
        return head + _grid(table.models, table.scenarios,
                            lambda m, i: table.cell(m, table.scenarios[i], b).text())
    lines: list[str] = []
    for s in table.scenarios:
        lines += [f"### {s}", "", "R² by labelled training trials of the target session.",
                  ""]
        lines += _grid(table.models, [_budget_name(b) for b in table.budgets],
                       lambda m, i, s=s: table.cell(m, s, table.budgets[i]).text())
        lines.append("")
    return lines


def _difference_tables(table: Table) -> list[str]:
    refs = [r for r in REFERENCES if r in table.models]
    if not refs:
        return []
    rows = [m for m in table.models if m not in ("ceiling", *refs) or m == SCRATCH]
    lines = ["## Paired differences", "",
             "R² of the row minus R² of "
             + " and of ".join(f"`{r}`" for r in refs)
             + " on the same sessions, seeds and labelled trials: mean ± std over the "
               "(session, seed) runs both have (n).", ""]

    def text(m: str, s: str, b: str) -> str:
        parts = [table.difference(m, r, s, b).text(sign=True) if m != r else "·"
                 for r in refs]
        return " / ".join(parts)

    header = " / ".join(f"− {r}" for r in refs)
    if len(table.budgets) == 1:
        b = table.budgets[0]
        lines += [f"Cells: {header}.", ""]
        lines += _grid([m for m in rows if m in table.models], table.scenarios,
                       lambda m, i: text(m, table.scenarios[i], b))
        return [*lines, ""]
    for s in table.scenarios:
        lines += [f"### {s}: {header}", ""]
        lines += _grid(rows, [_budget_name(b) for b in table.budgets],
                       lambda m, i, s=s: text(m, s, table.budgets[i]))
        lines.append("")
    return lines


def to_markdown(table: Table, prov: dict[str, Any], name: str = "benchmark",
                probes: Sequence[str] = (), latency: Sequence[str] = ()) -> str:
    """The table as markdown; ``probes``: the lines of the sections after the paired
    differences (the probes, the scaling study); ``latency``: the lines of the
    stream-latency section, if any."""
    lines = [f"# Benchmark: {name}", "",
             f"{METRICS[table.metric]}, stitched predictions on held-out test "
             "trials (eval_mask bins), mean ± sample std over sessions and seeds (n = "
             "session × seed runs).", ""]
    lines += _main_tables(table)
    lines.append("")
    lines += _difference_tables(table)
    lines += list(probes)
    lines += latency
    lines += ["## Provenance", "",
              f"- table written at commit: `{prov['table_git_commit']}`",
              f"- metrics produced at commit(s): "
              f"{', '.join(f'`{c}`' for c in prov['metrics_git_commits']) or 'none'}",
              f"- config hash: `{prov['config_hash']}`"]
    for d in prov["datasets"]:
        if d["dandiset_id"] in ("", "?", "None"):
            lines.append(f"- dataset `{d['dataset']}`: no dandiset (simulated or local data)")
        else:
            lines.append(f"- dataset `{d['dataset']}`: dandiset {d['dandiset_id']} "
                         f"version {d['dandiset_version']}")
    lines.append("- packages: " + ", ".join(f"{k} {v}" for k, v in
                                           sorted(prov["packages"].items())))
    lines.append(f"- metrics records: {prov['n_records']}")
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"

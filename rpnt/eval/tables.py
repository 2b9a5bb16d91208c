"""The benchmark table: mean ± std of R² per model (rows) and scenario (columns).

Each cell pools every metrics record of that model and scenario, over sessions and seeds:
``mean ± std (n=...)`` of the records' ``r2.mean``, with the sample standard deviation
(ddof = 1; shown as "n/a" for a single record). Records whose R² is undefined (NaN, a
constant test target) are left out and counted in the cell's note. Rows for models without
results say why: a skip record's reason (e.g. "torch-brain not installed"), "not
installed" for POYO when torch-brain cannot be imported, otherwise "no results".

Outputs: ``table.md`` (a markdown table + provenance block) and ``table.csv`` (one row
per model; per scenario the columns ``<scenario>:mean``, ``<scenario>:std``,
``<scenario>:n`` and ``<scenario>:note``), both written atomically.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rpnt import provenance as prov
from rpnt.atomic import write_text
from rpnt.errors import RpntError
from rpnt.provenance import config_hash, git_commit, package_versions

#: Row order of the benchmark table (other models follow, sorted).
MODEL_ORDER = ("wiener", "gru", "ndt", "poyo", "rpnt_scratch", "rpnt_frozen",
               "rpnt_fewshot", "rpnt_full", "ceiling")


@dataclass
class Cell:
    """Pooled R² (``r2.mean`` of each record) of one model in one scenario."""

    values: list[float] = field(default_factory=list)
    sessions: set[str] = field(default_factory=set)
    seeds: set[Any] = field(default_factory=set)
    undefined: int = 0  #: records with a NaN R²
    skipped: str | None = None  #: reason when every record was skipped

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan

    @property
    def std(self) -> float:
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else math.nan

    def text(self, digits: int = 3) -> str:
        if not self.values:
            if self.skipped:
                return self.skipped
            return "R² undefined" if self.undefined else "no results"
        std = "n/a" if math.isnan(self.std) else f"{self.std:.{digits}f}"
        note = f", {self.undefined} undefined" if self.undefined else ""
        return f"{self.mean:.{digits}f} ± {std} (n={self.n}{note})"


def load_records(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Read metrics JSON files (one record each, or a list of records)."""
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
                if not isinstance(r2, dict) or "mean" not in r2:
                    raise RpntError(f"{p}: metrics record without r2.mean; re-run rpnt "
                                    "evaluate")
            out.append({**rec, "_path": str(p)})
    return out


def summarise(records: Sequence[dict[str, Any]]) -> dict[tuple[str, str], Cell]:
    """Pool records into cells keyed by (model, scenario).

    A (model, scenario, session, seed) seen twice is an error: it would be counted twice.
    """
    cells: dict[tuple[str, str], Cell] = {}
    seen: dict[tuple, str] = {}
    for rec in records:
        model, scenario = str(rec["model"]), str(rec.get("scenario"))
        key = (model, scenario, rec.get("session"), rec.get("seed"))
        if key in seen:
            raise RpntError(f"{rec['_path']}: duplicate of {seen[key]} (model {model}, "
                            f"scenario {scenario}, session {key[2]}, seed {key[3]}); "
                            "pass each metrics file once")
        seen[key] = rec["_path"]
        cell = cells.setdefault((model, scenario), Cell())
        if rec.get("skipped") is not None:
            cell.skipped = str(rec["skipped"])
            continue
        value = rec["r2"]["mean"]
        if value is None or not math.isfinite(float(value)):
            cell.undefined += 1
            continue
        cell.values.append(float(value))
        cell.sessions.add(str(rec.get("session")))
        cell.seeds.add(rec.get("seed"))
    return cells


@dataclass
class Table:
    """The assembled table: ordered rows and columns and the pooled cells."""

    models: list[str]
    scenarios: list[str]
    cells: dict[tuple[str, str], Cell]
    row_notes: dict[str, str]  #: model -> reason when the model has no result at all

    def cell(self, model: str, scenario: str) -> Cell:
        c = self.cells.get((model, scenario))
        if c is None:
            c = Cell(skipped=self.row_notes.get(model))
        return c


def build_table(records: Sequence[dict[str, Any]],
                config: dict[str, Any] | None = None) -> Table:
    """Rows: :data:`MODEL_ORDER` models present in the records or expected by ``config``
    (its ``models`` list, plus ``ceiling`` when ``ceiling: true``). Columns: the config's
    scenarios in order, else the scenarios of the records (sorted)."""
    cells = summarise(records)
    present = {m for m, _ in cells}
    expected: set[str] = set()
    if config is not None:
        expected |= set(config.get("models") or [])
        if config.get("ceiling"):
            expected.add("ceiling")
    names = present | expected
    models = [m for m in MODEL_ORDER if m in names] + sorted(names - set(MODEL_ORDER))
    if config is not None and config.get("scenarios"):
        scenarios = list(config["scenarios"])
        scenarios += sorted({s for _, s in cells} - set(scenarios))
    else:
        scenarios = sorted({s for _, s in cells})
    notes: dict[str, str] = {}
    for m in models:
        if m in present:
            continue
        if m == "poyo" and not prov.poyo_available():
            notes[m] = "not installed"
        else:
            notes[m] = "no results"
    return Table(models=models, scenarios=scenarios, cells=cells, row_notes=notes)


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


def to_markdown(table: Table, prov: dict[str, Any], name: str = "benchmark") -> str:
    lines = [f"# Benchmark: {name}", "",
             "R² of velocity (mean of vx and vy), stitched predictions on held-out test "
             "trials (eval_mask bins), mean ± sample std over sessions and seeds (n = "
             "session × seed runs).", ""]
    lines.append("| model | " + " | ".join(table.scenarios) + " |")
    lines.append("|---|" + "---|" * len(table.scenarios))
    for m in table.models:
        row = [table.cell(m, s).text() for s in table.scenarios]
        lines.append(f"| {m} | " + " | ".join(row) + " |")
    lines += ["", "## Provenance", "",
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
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    header = ["model"]
    for s in table.scenarios:
        header += [f"{s}:mean", f"{s}:std", f"{s}:n", f"{s}:note"]
    w.writerow(header)
    for m in table.models:
        row: list[Any] = [m]
        for s in table.scenarios:
            c = table.cell(m, s)
            if not c.values:
                note = c.text()  # the reason: skipped / not installed / no results
            else:
                note = f"{c.undefined} undefined" if c.undefined else ""
            row += ["" if not c.values else repr(c.mean),
                    "" if math.isnan(c.std) else repr(c.std), c.n, note]
        w.writerow(row)
    return buf.getvalue()


def read_table_csv(path: str | Path) -> tuple[list[str], list[str], dict[str, dict]]:
    """Read ``table.csv`` back: (models, scenarios, {model: {scenario: {mean, std, n,
    note}}}) with NaN for empty numbers."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows or rows[0][0] != "model":
        raise RpntError(f"{path}: not a table.csv written by rpnt table")
    header = rows[0]
    scenarios = [h[: -len(":mean")] for h in header[1:] if h.endswith(":mean")]
    out: dict[str, dict] = {}
    for row in rows[1:]:
        rec = dict(zip(header, row, strict=True))
        out[row[0]] = {s: {"mean": float(rec[f"{s}:mean"] or "nan"),
                           "std": float(rec[f"{s}:std"] or "nan"),
                           "n": int(rec[f"{s}:n"] or 0), "note": rec[f"{s}:note"]}
                       for s in scenarios}
    return [r[0] for r in rows[1:]], scenarios, out


def write_table(metrics: Sequence[str | Path], out_dir: str | Path,
                config: dict[str, Any] | None = None, name: str | None = None) -> Table:
    """Build the table from metrics files and write ``table.md`` and ``table.csv``."""
    records = load_records(metrics)
    table = build_table(records, config)
    prov = provenance_block(records, config)
    name = name or str((config or {}).get("benchmark", "benchmark"))
    out_dir = Path(out_dir)
    write_text(out_dir / "table.md", to_markdown(table, prov, name))
    write_text(out_dir / "table.csv", to_csv(table))
    return table

"""The files of a benchmark table (rpnt.eval.tables builds the table): ``table.md``,
``table.csv``, ``differences.csv``, ``probe.csv``, ``scaling.csv`` and ``latency.csv``,
each written atomically, and ``table.csv`` read back (for the figures)."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rpnt.atomic import write_text
from rpnt.errors import RpntError
from rpnt.eval.cells import write_csv_rows
from rpnt.eval.latency_table import latency_csv, latency_section
from rpnt.eval.probes import load_probes, pretrained_metas, probe_csv, probe_lines
from rpnt.eval.scaling import scaling_csv, scaling_groups, scaling_lines
from rpnt.eval.tables import (
    REFERENCES,
    Table,
    build_table,
    load_records,
    provenance_block,
    table_metric,
    to_markdown,
)


def to_csv(table: Table) -> str:
    header = ["model"]
    for name, _, _ in table.columns():
        header += [f"{name}:mean", f"{name}:std", f"{name}:n", f"{name}:note"]
    rows: list[list[Any]] = [header]
    for m in table.models:
        row: list[Any] = [m]
        for _, s, b in table.columns():
            c = table.cell(m, s, b)
            if not c.values:
                note = c.text()  # the reason: skipped / not installed / no results
            else:
                note = f"{c.undefined} undefined" if c.undefined else ""
            row += ["" if not c.values else repr(c.mean),
                    "" if math.isnan(c.std) else repr(c.std), c.n, note]
        rows.append(row)
    return write_csv_rows(rows)


def differences_csv(table: Table) -> str:
    """Long format: scenario, budget, model, reference, mean, std, n."""
    rows: list[list[Any]] = [["scenario", "budget", "model", "reference", "mean", "std", "n"]]
    for s in table.scenarios:
        for b in table.budgets:
            for ref in REFERENCES:
                for m in table.models:
                    if m in (ref, "ceiling") or ref not in table.models:
                        continue
                    d = table.difference(m, ref, s, b)
                    if d.n:
                        rows.append([s, b, m, ref, repr(d.mean),
                                     "" if math.isnan(d.std) else repr(d.std), d.n])
    return write_csv_rows(rows)


def read_table_csv(path: str | Path) -> tuple[list[str], list[str], dict[str, dict]]:
    """Read ``table.csv`` back: (models, columns, {model: {column: {mean, std, n,
    note}}}) with NaN for empty numbers; columns are scenarios (``<scenario>@<budget>``
    with several budgets)."""
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
                config: dict[str, Any] | None = None, name: str | None = None,
                pretrained: Sequence[str | Path] = ()) -> Table:
    """Build the table from metrics files (and the probes: of ``pretrained`` model
    directories, on the targets of the records) and write ``table.md``, ``table.csv``,
    ``differences.csv``, ``probe.csv``, ``scaling.csv`` (rpnt.eval.scaling) and, with
    stream-scored records, ``latency.csv`` (:mod:`rpnt.eval.latency_table`; a stale one is
    removed otherwise)."""
    records = load_records(metrics, table_metric(config))
    table = build_table(records, config)
    metas = pretrained_metas(pretrained)
    probes = load_probes(metas, records)
    groups = scaling_groups(config, metas)
    prov = provenance_block(records, config)
    name = name or str((config or {}).get("benchmark", "benchmark"))
    out_dir = Path(out_dir)
    latency = latency_csv(records, table.models)
    write_text(out_dir / "table.md", to_markdown(
        table, prov, name, [*probe_lines(probes), *scaling_lines(table, groups)],
        latency_section(records, table.models)))
    write_text(out_dir / "table.csv", to_csv(table))
    write_text(out_dir / "differences.csv", differences_csv(table))
    write_text(out_dir / "probe.csv", probe_csv(probes))
    write_text(out_dir / "scaling.csv", scaling_csv(table, groups))
    if latency is not None:
        write_text(out_dir / "latency.csv", latency)
    else:
        (out_dir / "latency.csv").unlink(missing_ok=True)
    return table

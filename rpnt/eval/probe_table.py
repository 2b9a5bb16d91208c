"""The probe section of the benchmark table: how well a ridge map reads velocity from the
frozen pretrained encoder, from a random encoder of the same architecture, and from raw
counts (the ``probe`` of each pretrained model directory's meta.json).

Written by :func:`rpnt.eval.tables.write_table` into ``table.md`` (its "Probe of the
pretrained features" section) and ``probe.csv``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rpnt.errors import RpntError
from rpnt.eval.cells import Cell, write_csv_rows


def load_probes(pretrained: Sequence[str | Path]) -> list[dict[str, Any]]:
    """One row per probe session of every pretrained model directory (its meta.json's
    ``probe``): scenario, pretraining, seed, session, pretrained, random, counts."""
    rows = []
    for d in pretrained:
        path = Path(d) / "meta.json"
        try:
            meta = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise RpntError(f"{path}: cannot read a pretrained model's meta.json ({exc}); "
                            "pass directories written by rpnt pretrain") from exc
        pre = meta.get("pretraining") or {}
        name = str(pre.get("objective", "ssl")) + (
            f" ({pre['variant']})" if pre.get("variant") else "")
        for r in (meta.get("probe") or {}).get("sessions", []):
            rows.append({"scenario": str(meta.get("scenario")), "pretraining": name,
                         "seed": meta.get("seed"), **r})
    return rows


def probe_lines(probes: Sequence[dict[str, Any]]) -> list[str]:
    if not probes:
        return []
    lines = ["## Probe of the pretrained features", "",
             "Test R² of a per-bin ridge map to velocity, fit on the training trials of "
             "pretraining sessions (its penalty on their valid trials), from the pooled "
             "features of the frozen pretrained encoder, of a randomly initialised encoder "
             "of the same architecture, and from the raw spike counts: mean ± std over "
             "seeds × probe sessions (n).", "",
             "| scenario | pretraining | pretrained | random encoder | raw counts | "
             "pretrained − random |", "|---|---|---|---|---|---|"]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in probes:
        groups.setdefault((r["scenario"], r["pretraining"]), []).append(r)
    for (scen, name), rows in sorted(groups.items()):
        def text(values: list[float]) -> str:
            return Cell(values=[v for v in values if math.isfinite(v)]).text()
        cells = [text([r[k] for r in rows]) for k in ("pretrained", "random", "counts")]
        cells.append(Cell(values=[r["pretrained"] - r["random"] for r in rows]).text(
            sign=True))
        lines.append(f"| {scen} | {name} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def probe_csv(probes: Sequence[dict[str, Any]]) -> str:
    keys = ["scenario", "pretraining", "seed", "session", "pretrained", "random", "counts"]
    return write_csv_rows([keys, *([r.get(k) for k in keys] for r in probes)])

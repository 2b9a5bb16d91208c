"""The probe sections of the benchmark table: the pretrained features' ridge probe where
pretraining saw labels, and where transfer happens.

Two probes (:mod:`rpnt.train.probe`), side by side in ``table.md`` and ``probe.csv``:

- ``pretraining``: on held-out (test) trials of a few pretraining sessions, the ridge fit
  on their training trials (a pretrained model's ``meta.json``, key ``probe``). The joint
  objective fitted these sessions' training velocity, so this is where its features are
  expected to be best.
- ``target``: on the target session of every pretrained row, the ridge fit on its label
  budget's trials only and scored on its test trials (the metrics record's
  ``target_probe``, written by the finetuning job). The modes finetuned from one
  pretraining at one budget and seed share it; it counts once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rpnt.errors import RpntError
from rpnt.eval.cells import Cell, write_csv_rows
from rpnt.eval.tables import budget_key
from rpnt.rows import pretraining_name

#: probe.csv columns; ``where`` is ``pretraining`` or ``target``, ``budget`` empty for the
#: pretraining probe (it fits every training trial of its sessions).
PROBE_KEYS = ("where", "scenario", "pretraining", "budget", "seed", "session",
              "pretrained", "random", "counts")


def pretrained_metas(pretrained: Sequence[str | Path]) -> list[dict[str, Any]]:
    """The meta.json of every pretrained model directory."""
    out = []
    for d in pretrained:
        path = Path(d) / "meta.json"
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise RpntError(f"{path}: cannot read a pretrained model's meta.json ({exc}); "
                            "pass directories written by rpnt pretrain") from exc
    return out


def load_probes(metas: Sequence[dict[str, Any]],
                records: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """Probe rows: one per probe session of every pretrained model's meta.json
    (:func:`pretrained_metas`; its ``probe``), then one per (scenario, pretraining, budget,
    seed, target) of the metrics ``records`` that carry a ``target_probe``."""
    rows = []
    for meta in metas:
        name = pretraining_name(meta.get("pretraining") or {})
        for r in (meta.get("probe") or {}).get("sessions", []):
            rows.append({"where": "pretraining", "scenario": str(meta.get("scenario")),
                         "pretraining": name, "budget": "", "seed": meta.get("seed"), **r})
    seen = set()
    for rec in records:
        tp = rec.get("target_probe")
        if not tp:
            continue
        row = {"where": "target", "scenario": str(rec.get("scenario")),
               "pretraining": str(tp.get("pretraining", "ssl")), "budget": str(tp["budget"]),
               "seed": rec.get("seed"), "session": tp["session"],
               **{k: float(tp[k]) for k in ("pretrained", "random", "counts")}}
        key = tuple(row[k] for k in ("scenario", "pretraining", "budget", "seed", "session"))
        if key not in seen:
            seen.add(key)
            rows.append(row)
    return rows


def _cells(rows: Sequence[dict[str, Any]]) -> list[str]:
    def text(values: list[float]) -> str:
        return Cell(values=[v for v in values if math.isfinite(v)]).text()
    cells = [text([r[k] for r in rows]) for k in ("pretrained", "random", "counts")]
    cells.append(Cell(values=[r["pretrained"] - r["random"] for r in rows
                              if math.isfinite(r["pretrained"] - r["random"])]).text(sign=True))
    return cells


def probe_lines(probes: Sequence[dict[str, Any]]) -> list[str]:
    """The markdown sections of both probes (none without rows)."""
    pre = [r for r in probes if r["where"] == "pretraining"]
    tgt = [r for r in probes if r["where"] == "target"]
    lines: list[str] = []
    if pre:
        lines += ["## Probe of the pretrained features", "",
                  "Test R² of a per-bin ridge map to velocity, fit on the training trials of "
                  "pretraining sessions (its penalty on their valid trials), from the pooled "
                  "features of the frozen pretrained encoder, of a randomly initialised "
                  "encoder of the same architecture, and from the raw spike counts: mean ± "
                  "std over seeds × probe sessions (n).", "",
                  "| scenario | pretraining | pretrained | random encoder | raw counts | "
                  "pretrained − random |", "|---|---|---|---|---|---|"]
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in pre:
            groups.setdefault((r["scenario"], r["pretraining"]), []).append(r)
        for (scen, name), rows in sorted(groups.items()):
            lines.append(f"| {scen} | {name} | " + " | ".join(_cells(rows)) + " |")
        lines.append("")
    if tgt:
        lines += ["## Probe on the target", "",
                  "The same probe where transfer happens: on the target session, the ridge "
                  "fit on the label budget's trials only (its penalty by trial-grouped "
                  "cross-validation inside them), scored on the target's test trials; the "
                  "pretrained encoder with the target's fresh read-in (where frozen "
                  "finetuning starts), a random encoder, the raw counts: mean ± std over "
                  "seeds × targets (n).", "",
                  "| scenario | pretraining | budget | pretrained | random encoder | "
                  "raw counts | pretrained − random |", "|---|---|---|---|---|---|---|"]
        tg: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for r in tgt:
            tg.setdefault((r["scenario"], r["pretraining"], r["budget"]), []).append(r)
        for (scen, name, b), rows in sorted(
                tg.items(), key=lambda kv: (kv[0][0], kv[0][1], budget_key(kv[0][2]))):
            lines.append(f"| {scen} | {name} | {b} | " + " | ".join(_cells(rows)) + " |")
        lines.append("")
    return lines


def probe_csv(probes: Sequence[dict[str, Any]]) -> str:
    """probe.csv: one row per probe (columns :data:`PROBE_KEYS`)."""
    return write_csv_rows([list(PROBE_KEYS),
                           *([r.get(k) for k in PROBE_KEYS] for r in probes)])

"""The scaling study's table and figure: R² against the pretraining corpus of one target."""

import csv
import json

import pytest
from test_tables import _rec, _write

from rpnt.eval.figure_set import write_all_figures
from rpnt.eval.table_files import write_table

TARGET = {"subject": ["C"], "date_from": "2016-10-01"}
CONFIG = {"benchmark": "scaling", "models": ["gru", "rpnt_scratch", "rpnt_ssl_full"],
          "budgets": [5, "all"],
          # the rows that do not depend on the corpus run in one scenario of the group
          "model_scenarios": {"gru": ["cs_all"], "rpnt_scratch": ["cs_all"]},
          "scenarios": {"cs_n1": {"target": TARGET, "n_pretrain_sessions": 1},
                        "cs_n4": {"target": TARGET, "n_pretrain_sessions": 4},
                        "cs_all": {"target": TARGET},
                        "cs_plus": {"target": TARGET, "pretrain_manifests": ["b.tsv"]},
                        "other": {"target": {"subject": ["T"]}}}}
N = {"cs_n1": 1, "cs_n4": 4, "cs_all": 10, "cs_plus": 13, "other": 8}


def _pretrained(tmp_path):
    dirs = []
    for scen, n in N.items():
        for seed in (0, 1):
            d = tmp_path / f"pre_{scen}_{seed}"
            d.mkdir()
            pre = [f"p{i}" for i in range(n)] + ["tgt"]  # the loose variant's target too
            (d / "meta.json").write_text(json.dumps({
                "stage": "pretrain", "scenario": scen, "seed": seed,
                "pretraining": {"objective": "ssl", "pretrain_sessions": pre,
                                "target_sessions": ["tgt"],
                                "datasets": ["a", "b"] if scen == "cs_plus" else ["a"]}}))
            dirs.append(d)
    return dirs


def test_scaling_table_and_figure(tmp_path):
    recs = []
    for scen, n in N.items():
        for seed in (0, 1):
            for b in (5, "all"):
                base = 0.3 if b == 5 else 0.6
                recs.append({**_rec("rpnt_ssl_full", scen, "tgt", seed,
                                    base + 0.01 * n + 0.01 * seed), "budget": b})
                if scen == "cs_all":
                    recs += [{**_rec("rpnt_scratch", scen, "tgt", seed, base), "budget": b},
                             {**_rec("gru", scen, "tgt", seed, base + 0.02), "budget": b}]
    metrics, pre = _write(tmp_path, recs), _pretrained(tmp_path)
    write_table(metrics, tmp_path / "out", CONFIG, pretrained=pre)
    md = (tmp_path / "out" / "table.md").read_text()
    assert "## Scaling with pretraining data" in md
    # one row per point, sessions from meta.json (the target excluded), ordered by corpus
    # and size; the paired difference against scratch on the same (target, seed) runs
    assert "| a | 1 | cs_n1 | 0.315 ± 0.007 (n=2)<br>− scratch +0.015 ± 0.007 (n=2) |" in md
    assert md.index("| a | 4 | cs_n4") < md.index("| a | 10 | cs_all") < \
        md.index("| a+b | 13 | cs_plus")
    assert "| other |" not in md.split("## Scaling")[1]  # not a scaling scenario's target
    # scratch and the GRU ran in cs_all only: every point is paired with those runs
    assert "| rpnt_scratch | – | cs_all | 0.300 ± 0.000 (n=2) |" in md
    assert "| rpnt_scratch | not run | not run |" in md  # the main table: cs_n1, 5 and all
    with open(tmp_path / "out" / "scaling.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 * 2  # 4 points x 2 budgets
    row = rows[-1]
    assert row["corpus"] == "a+b" and row["budget"] == "all"
    assert float(row["minus_scratch_mean"]) == pytest.approx(0.135)
    figs = write_all_figures(tmp_path / "figs", CONFIG, metrics=metrics, runs=pre,
                             attention=False)
    assert (tmp_path / "figs" / "scaling.png") in figs


def test_no_scaling_section_without_scaling_scenarios(tmp_path):
    cfg = {"models": ["gru"], "scenarios": {"cs_all": {"target": TARGET}}}
    write_table(_write(tmp_path, [_rec("gru", "cs_all", "tgt", 0, 0.5)]), tmp_path / "o", cfg,
                pretrained=_pretrained(tmp_path))
    assert "Scaling" not in (tmp_path / "o" / "table.md").read_text()
    assert (tmp_path / "o" / "scaling.csv").read_text().count("\n") == 1  # the header

"""End to end: the tiny preset through the whole workflow, as CI runs it.

`snakemake --cores 2 --configfile config/tiny.yaml` simulates five sessions, ingests
them, pretrains RPNT per scenario, trains every decoder on every target session,
evaluates them and writes the benchmark table, figures and the HTML report.
"""

from __future__ import annotations

import csv
import json

import pytest

from rpnt import workflow as W
from tests.workflow_helpers import make_workdir, run_snakemake


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_tiny_benchmark_end_to_end(tmp_path):
    wd = make_workdir(tmp_path / "wf")
    run_snakemake(wd, "--cores", "2", "--configfile", "config/tiny.yaml", timeout=1500)

    out = wd / "results/benchmark/tiny"
    md, csv_path = out / "table.md", out / "table.csv"
    assert md.exists() and csv_path.exists()
    text = md.read_text()
    models = W.active_models(W.resolve_config(W.load_yaml(wd / "config/tiny.yaml")))
    for name in [*models, "ceiling", "cross_session", "cross_subject"]:
        assert name in text, name
    assert "±" in text
    rows = list(csv.DictReader(csv_path.open()))
    assert rows

    # One metrics JSON per (scenario, model, target session, seed), each a real score.
    metrics = sorted((wd / "results/tiny/metrics").rglob("seed*.json"))
    assert len(metrics) == len(models) * 3
    for path in metrics:
        rec = json.loads(path.read_text())
        assert rec["split"] == "test" and rec["n_bins"] > 0
        assert -10 < rec["r2"]["mean"] <= 1
        assert rec["provenance"]["git_commit"]

    figures = {p.name for p in (out / "figures").glob("*.png")}
    assert "r2.png" in figures
    assert any(f.startswith("predictions_") for f in figures)
    assert any(f.startswith("curves_") for f in figures)

    # Rerunning does nothing: every output is up to date.
    proc = run_snakemake(wd, "-n", "--configfile", "config/tiny.yaml")
    assert "Nothing to be done" in proc.stdout + proc.stderr

    run_snakemake(wd, "--configfile", "config/tiny.yaml", "--report", "report.html",
                  timeout=300)
    html = (wd / "report.html").read_text(errors="replace")
    assert "table.md" in html and "r2.png" in html

"""End to end: the tiny preset through the whole workflow, as CI runs it, then what a
config change would rerun.

`snakemake --cores 2 --configfile config/tiny.yaml` simulates five sessions, ingests
them, pretrains RPNT per scenario, trains every decoder on every target session,
evaluates them and writes the benchmark table, figures and the HTML report. After that
real run, dry runs (`snakemake -n`, Snakemake's default rerun triggers: mtime, params,
input, software-env, code) of changed configs plan only the jobs each change affects
(docs/workflow.md "What a config change reruns").
"""

from __future__ import annotations

import csv
import json
import re
import subprocess

import pytest
import xarray as xr

from rpnt import workflow as W
from tests.workflow_helpers import (
    REPO,
    head_commit,
    job_counts,
    make_workdir,
    offline_env,
    run_snakemake,
    write_config,
)

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A workdir after a real run of the tiny benchmark."""
    wd = make_workdir(tmp_path_factory.mktemp("e2e") / "wf")
    run_snakemake(wd, "--cores", "2", "--configfile", "config/tiny.yaml", timeout=1500)
    return wd


def _models() -> list[str]:
    return W.active_models(W.resolve_config(W.load_yaml(REPO / "config/tiny.yaml")))


def _runs(seed: int = 0) -> list[W.Run]:
    """The decoders the tiny benchmark trains with ``seed`` (rows x targets x budgets)."""
    cfg = W.resolve_config(W.load_yaml(REPO / "config/tiny.yaml"))
    plan = W.make_plan(cfg, W.planned_sessions(W.dataset_entry(cfg)), simulated=True)
    return [r for r in plan.runs() if r.seed == seed]


@pytest.mark.timeout(1800)
def test_tiny_benchmark_end_to_end(tiny):
    wd = tiny
    out = wd / "results/benchmark/tiny/bin20ms"
    md, csv_path = out / "table.md", out / "table.csv"
    assert md.exists() and csv_path.exists()
    text = md.read_text()
    models = _models()
    for name in [*models, "ceiling", "cross_session", "cross_subject"]:
        assert name in text, name
    assert "±" in text
    rows = list(csv.DictReader(csv_path.open()))
    assert rows

    # One metrics JSON per (scenario, model, target session, budget, seed), each a real
    # score of a decoder trained on that budget's labelled trials.
    metrics = sorted((wd / "results/tiny/bin20ms/metrics").rglob("seed*.json"))
    runs = _runs()
    assert len(metrics) == len(runs) and {r.budget for r in runs} == {"4", "all"}
    for path in metrics:
        rec = json.loads(path.read_text())
        assert rec["split"] == "test" and rec["n_bins"] > 0
        assert -10 < rec["r2"]["mean"] <= 1
        assert f"/{rec['model']}/" in str(path) and f"/{rec['budget']}trials/" in str(path)

    # Each training job scored its model (the log says so) exactly as a separate
    # `rpnt evaluate` process scores it: the same metrics and predictions, byte for byte.
    results = "results/tiny/bin20ms"
    session = "sub-T_ses-CO-20130819"
    for model, job in (("rpnt_joint_staged", "finetune"), ("gru", "baseline")):
        run = f"cross_subject/{model}/{session}/4trials/seed0"
        log = (wd / f"logs/tiny/bin20ms/{job}/{run}.log").read_text()
        assert f"{model} on {session}: R² mean" in log, log[-2000:]
        subprocess.run(
            ["rpnt", "evaluate", "--model", f"{results}/models/{run}",
             "--store", f"resources/stores/sim_tiny/bin20ms/{session}.zarr",
             "--scenario", "cross_subject", "--config", f"{results}/config.resolved.yaml",
             "--tag", f"model={model}", "--tag", "seed=0", "--out", "again.json",
             "--predictions", "again.npz"],
            cwd=wd, env=offline_env(wd), check=True, capture_output=True, timeout=300)
        for made, again in ((f"metrics/{run}.json", "again.json"),
                            (f"predictions/{run}.npz", "again.npz")):
            assert (wd / results / made).read_bytes() == (wd / again).read_bytes(), made
            (wd / again).unlink()

    figures = {p.name for p in (out / "figures").glob("*.png")}
    assert "r2.png" in figures
    assert any(f.startswith("predictions_") for f in figures)
    assert any(f.startswith("curves_") for f in figures)

    # The commands read the resolved config the workflow wrote before its first job.
    resolved = W.load_yaml(wd / "results/tiny/bin20ms/config.resolved.yaml")
    assert resolved == W.resolve_config(W.load_yaml(wd / "config/tiny.yaml"))

    # Rerunning does nothing: every output is up to date.
    proc = run_snakemake(wd, "-n", "--configfile", "config/tiny.yaml")
    assert "Nothing to be done" in proc.stdout + proc.stderr

    run_snakemake(wd, "--configfile", "config/tiny.yaml", "--report", "report.html",
                  timeout=300)
    html = (wd / "report.html").read_text(errors="replace")
    assert "table.md" in html and "r2.png" in html


def test_outputs_record_the_commit_of_the_checkout_that_ran(tiny):
    """Stores, metrics and the table carry the workdir's commit (the checkout whose
    Snakefile ran), not that of the checkout the tests were started from."""
    commit = head_commit(tiny)
    for path in (tiny / "results/tiny/bin20ms/metrics").rglob("seed*.json"):
        assert json.loads(path.read_text())["provenance"]["git_commit"] == commit, path
    assert f"table written at commit: `{commit}`" in \
        (tiny / "results/benchmark/tiny/bin20ms/table.md").read_text()
    for store in (tiny / "resources/stores/sim_tiny/bin20ms").glob("*.zarr"):
        with xr.open_zarr(store) as ds:
            assert ds.attrs["git_commit"] == commit, store


def _plan(wd, name: str, **changes) -> tuple[dict[str, int], str]:
    write_config(wd, name, "config/tiny.yaml", **changes)
    out = run_snakemake(wd, "-n", "--configfile", f"config/{name}.yaml").stdout
    return job_counts(out), out


def _planned_outputs(out: str) -> list[str]:
    return re.findall(r"^\s+output: (.+)$", out, re.M)


def test_figures_change_plans_only_the_figures(tiny):
    n, _ = _plan(tiny, "c_figures", figures={"example_model": "gru"})
    assert n == {"figures": 1, "all": 1}


def test_removing_a_model_plans_only_table_and_figures(tiny):
    models = [m for m in W.resolve_config(W.load_yaml(tiny / "config/tiny.yaml"))["models"]
              if m != "gru"]
    n, _ = _plan(tiny, "c_models", models=models)
    assert n == {"table": 1, "figures": 1, "all": 1}


def test_adding_a_seed_plans_only_that_seeds_jobs(tiny):
    n, out = _plan(tiny, "c_seeds", seeds=[0, 1])
    runs = _runs()
    assert n.pop("pretrain") == 2 * 2  # scenarios x objectives
    assert n.pop("finetune") == sum(r.model not in W.BASELINES for r in runs)
    assert n.pop("baseline") == sum(r.model in W.BASELINES for r in runs)
    assert n == {"table": 1, "figures": 1, "all": 1}
    for output in _planned_outputs(out):
        if "/seed" in output:
            assert "/seed1" in output and "/seed0" not in output, output


def test_pretraining_change_plans_pretraining_and_what_follows(tiny):
    """pretrain.train.steps: every pretraining, the rows that start from them (each
    scores its model), table and figures; no ingest, no peer, no RPNT from scratch."""
    pre = W.load_yaml(tiny / "config/tiny.yaml")["pretrain"]
    pre["train"] = {**pre["train"], "steps": pre["train"]["steps"] + 10}
    n, out = _plan(tiny, "c_pretrain", pretrain=pre)
    pretrained = sum(r.model not in W.BASELINES and r.model != "rpnt_scratch"
                     for r in _runs())
    assert n == {"pretrain": 4, "finetune": pretrained, "table": 1, "figures": 1, "all": 1}
    assert "rpnt_scratch" not in " ".join(_planned_outputs(out))


def test_stores_of_another_bin_size_coexist(tiny):
    """A 25 ms store of a session is made next to the 20 ms ones, which stay current."""
    session = "sub-T_ses-CO-20130819"
    write_config(tiny, "c_bins", "config/tiny.yaml", benchmark="tiny25", bin_ms=25)
    run_snakemake(tiny, f"resources/stores/sim_tiny/bin25ms/{session}.zarr", "--cores", "1",
                  "--configfile", "config/c_bins.yaml", timeout=300)
    with xr.open_zarr(tiny / f"resources/stores/sim_tiny/bin25ms/{session}.zarr") as ds:
        assert ds.attrs["bin_size_s"] == pytest.approx(0.025)
    with xr.open_zarr(tiny / f"resources/stores/sim_tiny/bin20ms/{session}.zarr") as ds:
        assert ds.attrs["bin_size_s"] == pytest.approx(0.020)
    proc = run_snakemake(tiny, "-n", "--configfile", "config/tiny.yaml")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_no_checkpoint_folders_left_after_a_successful_run(tiny):
    """Each finished job deletes its rolling checkpoints; the run then prunes the folders
    they were in (Snakefile onsuccess)."""
    ckpt = tiny / "resources/checkpoints/tiny/bin20ms"
    assert not ckpt.exists() or not any(p.is_dir() for p in ckpt.rglob("*")), \
        sorted(str(p) for p in ckpt.rglob("*"))[:5]


def test_prune_empty_dirs_keeps_what_holds_files(tmp_path):
    (tmp_path / "a/b/c").mkdir(parents=True)
    (tmp_path / "x/y").mkdir(parents=True)
    (tmp_path / "x/keep.txt").write_text("k")
    assert W.prune_empty_dirs(tmp_path / "a") == 3
    assert W.prune_empty_dirs(tmp_path) == 1  # x/y
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == \
        ["x", "x/keep.txt"]
    assert W.prune_empty_dirs(tmp_path / "missing") == 0

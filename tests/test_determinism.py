"""Every job type gives the same bytes when run twice in separate processes.

Each job (pretrain ssl / joint; finetune scratch / frozen / full / staged / labelfree, at
a label budget; baseline wiener / gru / ndt / poyo; evaluate, separately and inside the
training process) runs as the real ``rpnt`` command in two fresh processes with different
``PYTHONHASHSEED`` values (and torch's default generator is seeded from the OS in every
process), each in its own working directory with the same relative paths.
Saved weights are compared byte for byte (safetensors), the training log byte for byte,
and meta.json / metrics JSON after removing only the wall-clock fields listed in
:data:`TIMING_KEYS`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from eval_helpers import write_session_store
from train_helpers import make_session

from rpnt.provenance import poyo_available

pytestmark = pytest.mark.slow

PRE = ["sub-C_ses-CO-20131003", "sub-C_ses-CO-20140218"]
TARGET = "sub-C_ses-CO-20161013"
TRAIN = {"steps": 12, "batch_size": 8, "lr": 3e-3, "warmup_steps": 2, "eval_every": 6,
         "checkpoint_every": 6}
CONFIG = {
    "model": {"size": "tiny", "d_model": 16, "n_layers": 1, "n_spatial_layers": 1,
              "n_heads": 2, "n_units": 8, "window": 20},
    "pretrain": {"train": TRAIN, "subsets": 2, "val_windows": 8},
    "finetune": {"train": TRAIN, "labelfree_steps": 6},
    "labels": {"selection": "none", "min_bins": 20},
    "baselines": {
        "wiener": {"lags": 3},
        "gru": {"hidden": 8, "window_bins": 20, "train": TRAIN},
        "ndt": {"d_model": 8, "layers": 1, "heads": 2, "window_bins": 20,
                "pretrain": {"steps": 6, "batch_size": 8}, "train": TRAIN},
        "poyo": {"dim": 16, "depth": 1, "dim_head": 8, "window_bins": 20, "train": TRAIN},
    },
    "scenarios": {"cross_session": {"target": {"subject": ["C"], "date_from": "2016-10-01"}}},
}
#: Wall-clock fields: the only ones allowed to differ between two runs.
TIMING_KEYS = {("fit", "seconds")}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Two run folders ``run_a``, ``run_b``, each with ``data/`` -> the shared inputs."""
    from rpnt.manifest import build_manifest, write_manifest

    root = tmp_path_factory.mktemp("det")
    shared = root / "data"
    shared.mkdir()
    stores = []
    for i, sid in enumerate([*PRE, TARGET]):
        s = make_session(sid, seed=20 + i, n_trials=16, trial_len=50, units_per_site=6)
        stores.append(write_session_store(s, shared / f"{sid}.zarr"))
    table = build_manifest(stores)
    # store paths relative to the manifest: both runs record the same strings
    table["store"] = [Path(p).name for p in table["store"]]
    write_manifest(table, shared / "manifest.tsv")
    (shared / "cfg.yaml").write_text(yaml.safe_dump(CONFIG))
    runs = {}
    for name in ("a", "b"):
        run = root / f"run_{name}"
        run.mkdir()
        (run / "data").symlink_to(shared)
        runs[name] = run
    return runs


def rpnt_twice(runs: dict[str, Path], *argv: str) -> None:
    """Run ``rpnt ARGV`` in both run folders at once, in fresh processes."""
    procs = []
    for hash_seed, run in zip(("1", "2"), runs.values(), strict=True):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "OMP_NUM_THREADS": "1",
               "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]),
                                              os.environ.get("PYTHONPATH", "")])}
        procs.append(subprocess.Popen([sys.executable, "-m", "rpnt", *argv], cwd=run,
                                      env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    for p in procs:
        out, _ = p.communicate(timeout=600)
        assert p.returncode == 0, f"rpnt {' '.join(argv)} failed:\n{out}"


def _drop(rec: dict, keys: set[tuple[str, ...]]) -> dict:
    rec = json.loads(json.dumps(rec))
    for path in keys:
        node = rec
        for k in path[:-1]:
            node = node.get(k, {})
        node.pop(path[-1], None)
    return rec


def assert_same_run(runs: dict[str, Path], out: str) -> None:
    """Byte-identical weights and training log; meta.json equal but for wall time."""
    a, b = (runs[k] / out for k in ("a", "b"))
    assert (a / "weights.safetensors").read_bytes() == (b / "weights.safetensors").read_bytes(), \
        f"{out}: weights differ between two processes"
    if (a / "metrics.jsonl").exists():
        assert (a / "metrics.jsonl").read_bytes() == (b / "metrics.jsonl").read_bytes(), out
    ma, mb = (json.loads((d / "meta.json").read_text()) for d in (a, b))
    assert _drop(ma, TIMING_KEYS) == _drop(mb, TIMING_KEYS), f"{out}: meta.json differs"


def test_pretrain_and_finetune_modes(data):
    for objective in ("ssl", "joint"):
        rpnt_twice(data, "pretrain", "--config", "data/cfg.yaml", "--manifest",
                   "data/manifest.tsv", "--scenario", "cross_session", "--seed", "3",
                   "--objective", objective, "--out", f"pre_{objective}")
        assert_same_run(data, f"pre_{objective}")
    for mode in ("scratch", "frozen", "full", "staged", "labelfree"):
        init = [] if mode == "scratch" else ["--init", "pre_joint"]
        # staged also scores its model in the training process, as the workflow does
        score = (["--metrics", "fit_staged.json", "--predictions", "fit_staged.npz"]
                 if mode == "staged" else [])
        rpnt_twice(data, "finetune", "--config", "data/cfg.yaml", "--mode", mode, *init,
                   "--store", f"data/{TARGET}.zarr", "--scenario", "cross_session",
                   "--budget", "3", "--seed", "3", "--out", f"ft_{mode}", *score)
        assert_same_run(data, f"ft_{mode}")
    rpnt_twice(data, "evaluate", "--model", "ft_staged", "--store", f"data/{TARGET}.zarr",
               "--config", "data/cfg.yaml", "--scenario", "cross_session",
               "--predictions", "staged.npz", "--out", "staged.json")
    for name in ("staged.json", "staged.npz"):
        assert (data["a"] / name).read_bytes() == (data["b"] / name).read_bytes(), name
        # scored after training, in the process that trained: the same bytes
        assert (data["a"] / f"fit_{name}").read_bytes() == (data["a"] / name).read_bytes()
        assert (data["b"] / f"fit_{name}").read_bytes() == (data["a"] / name).read_bytes()


@pytest.mark.parametrize("model", ["wiener", "gru", "ndt", "poyo"])
def test_baselines(data, model):
    if model == "poyo" and not poyo_available():
        pytest.skip("torch-brain not installed")
    rpnt_twice(data, "baseline", "--config", "data/cfg.yaml", "--model", model,
               "--store", f"data/{TARGET}.zarr", "--seed", "5", "--out", model)
    assert_same_run(data, model)
    rpnt_twice(data, "evaluate", "--model", model, "--store", f"data/{TARGET}.zarr",
               "--tag", "seed=5", "--out", f"{model}.json")
    assert (data["a"] / f"{model}.json").read_bytes() == \
        (data["b"] / f"{model}.json").read_bytes()

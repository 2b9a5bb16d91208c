"""``rpnt bench corpus``: peak memory of pretraining as the corpus grows, stores read
eagerly (every session's counts in memory) vs lazily (windows read on demand through
the bounded chunk cache of :mod:`rpnt.data.lazy`).

The corpus: the stores of a simulated dataset (default ``resources/stores/sim_default/
bin20ms``, made by the default workflow), copied to a temporary folder as many times as
``--sessions`` needs (distinct paths, so the lazy cache shares nothing between copies;
each copy gets its own session id). For each size and mode a fresh process loads the
sessions as pretraining does and runs ``--steps`` pretraining steps of the tiny model;
its peak RSS (``ru_maxrss``) and its RSS before loading are printed side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from rpnt.errors import RpntError


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def worker(spec: dict) -> None:
    """Load ``spec["stores"]`` (eager or lazy), pretrain, print ``RESULT {json}``."""
    import torch

    from rpnt.model import RPNTConfig
    from rpnt.store import load_session
    from rpnt.train.config import PretrainConfig
    from rpnt.train.pretrain import pretrain
    from rpnt.train.trainer import TrainConfig

    torch.set_num_threads(1)
    before = _rss_mb()
    sessions = []
    for i, path in enumerate(spec["stores"]):
        s = load_session(path, lazy=spec["lazy"])
        sessions.append(replace(s, session=f"{s.session}-copy{i}", spike_times=None,
                                spike_unit=None))
    loaded = _rss_mb()
    train = TrainConfig(steps=spec["steps"], batch_size=32, warmup_steps=1,
                        eval_every=10**9, checkpoint_every=0, log_every=10**9, device="cpu")
    pcfg = replace(PretrainConfig(), train=train, probe_sessions=0)
    cfg = RPNTConfig.preset("tiny", n_units=64, window=50)
    pretrain(sessions, cfg, pcfg, 0, None, None, val_sessions=[])
    print("RESULT " + json.dumps({"before_mb": before, "loaded_mb": loaded,
                                  "peak_mb": _rss_mb()}), flush=True)


def _replicate(src: Path, n: int, tmp: Path) -> list[str]:
    stores = sorted(src.glob("*.zarr"))
    if not stores:
        raise RpntError(f"{src}: no .zarr store; make the simulated dataset first "
                        "(snakemake --cores 2 --configfile config/config.yaml) or pass --stores")
    out = []
    for i in range(n):
        dst = tmp / f"copy{i // len(stores)}" / stores[i % len(stores)].name
        if not dst.exists():
            shutil.copytree(stores[i % len(stores)], dst)
        out.append(str(dst))
    return out


def run(args: argparse.Namespace) -> int:
    from rpnt.bench.units import write_results
    from rpnt.data.lazy import CACHE
    from rpnt.machine import machine_summary

    machine = machine_summary()
    print(f"machine: {machine}; tiny RPNT, {args.steps} pretraining steps "
          f"of 32 windows; lazy chunk cache {CACHE.max_bytes / 2**20:.0f} MB "
          "(RPNT_STORE_CACHE_MB); the machine's load is not controlled")
    rows = []
    with tempfile.TemporaryDirectory(prefix="rpnt-corpus-") as tmp:
        stores = _replicate(Path(args.stores), max(args.sessions), Path(tmp))
        for n in args.sessions:
            for lazy in (False, True):
                spec = {"stores": stores[:n], "lazy": lazy, "steps": args.steps}
                proc = subprocess.run([sys.executable, "-m", "rpnt.bench.corpus",
                                       json.dumps(spec)], capture_output=True, text=True,
                                      timeout=3600, env={**os.environ, "OMP_NUM_THREADS": "1"})
                lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
                if proc.returncode or not lines:
                    raise RpntError(f"bench corpus: {n} sessions failed: "
                                    f"{proc.stderr.strip()[-800:]}")
                r = json.loads(lines[-1][7:])
                rows.append({"sessions": n, "stores": "lazy" if lazy else "eager", **r})
    print(f"{'sessions':>8} {'stores':>6} {'RSS before':>11} {'after load':>11} {'peak':>8}")
    for r in rows:
        print(f"{r['sessions']:>8} {r['stores']:>6} {r['before_mb']:>9.0f}MB "
              f"{r['loaded_mb']:>9.0f}MB {r['peak_mb']:>6.0f}MB")
    write_results(args.json, args, rows, machine)
    return 0


if __name__ == "__main__":  # one measured process, started by run()
    worker(json.loads(sys.argv[1]))

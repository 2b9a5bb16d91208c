"""One rank of a data-parallel pretraining run on synthetic sessions (tests/test_ddp.py).

Started by ``python -m torch.distributed.run --nproc-per-node N tests/ddp_worker.py OUT
--steps S ...`` (or as one plain process): every rank pretrains a tiny RPNT (dropout off)
with :func:`rpnt.train.pretrain.pretrain`; rank 0 writes ``OUT/losses.json`` (the loss
of every step) and ``OUT/weights.pt`` (the final state dict). ``--signal-at K`` makes
rank ``--signal-rank`` send itself SIGTERM while drawing batch K (a preemption that
reaches one rank only); the run then checkpoints to ``OUT/ckpt`` and exits with code 3.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from model_helpers import tiny_config
from train_helpers import make_session

from rpnt import ranks
from rpnt.train.config import PretrainConfig
from rpnt.train.pretrain import pretrain
from rpnt.train.trainer import TrainConfig, TrainingInterrupted


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--accumulation", type=int, default=1)
    ap.add_argument("--signal-at", type=int, default=-1)
    ap.add_argument("--signal-rank", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(1)
    me = ranks.init("cpu")
    out = Path(args.out)
    sessions = [make_session(sid, seed=10 + i, n_trials=16, trial_len=40) for i, sid in
                enumerate(("sub-C_ses-CO-20131003", "sub-C_ses-RT-20131004",
                           "sub-M_ses-CO-20140210"))]
    train = TrainConfig(steps=args.steps, batch_size=args.batch, lr=3e-3, warmup_steps=2,
                        eval_every=10_000, checkpoint_every=10_000, log_every=1,
                        accumulation=args.accumulation, device="cpu")
    pcfg = replace(PretrainConfig(), train=train, subsets=2, val_windows=4)
    draws = {"n": 0}

    def observer(session, bins, units) -> None:  # called once per drawn micro-batch
        if draws["n"] == args.signal_at and me.rank == args.signal_rank:
            os.kill(os.getpid(), signal.SIGTERM)
        draws["n"] += 1

    cfg = tiny_config(readin="shared", window=12, n_units=16)
    try:
        decoder, result = pretrain(sessions, cfg, pcfg, seed=0, ckpt_dir=out / "ckpt",
                                   log_dir=out / "log", observer=observer, run_key="ddp")
    except TrainingInterrupted as exc:
        print(f"rank {me.rank}: {exc}", flush=True)
        return 3
    finally:
        ranks.finish()
    if me.main:
        losses = [r["loss"] for r in result.history if "loss" in r]
        (out / "losses.json").write_text(json.dumps(losses))
        torch.save(decoder.model.state_dict(), out / "weights.pt")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Write a trained decoder with its training log, atomically, and clean up checkpoints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from rpnt.atomic import atomic_path
from rpnt.decoders.base import Decoder, meta_text, save_decoder
from rpnt.train.runlog import CURVES_NAME, METRICS_NAME
from rpnt.train.trainer import FitResult


def default_checkpoint_dir(out: str | Path) -> Path:
    """``<out>.ckpt`` next to the output (never inside a declared output)."""
    out = Path(out)
    return out.with_name(out.name + ".ckpt")


def fit_summary(result: FitResult) -> dict[str, Any]:
    """The JSON-able part of a FitResult recorded in meta.json."""
    return {"steps_done": result.steps_done, "best_val": result.best_val,
            "best_step": result.best_step, "stopped_early": result.stopped_early,
            "final_loss": result.final_loss, "resumed_from": result.resumed_from,
            "seconds": round(result.seconds, 3)}


def write_run(decoder: Decoder, out: str | Path, log_dir: str | Path,
              ckpt_dir: str | Path | None, **meta: Any) -> dict[str, Any]:
    """``out/`` = save_decoder files + metrics.jsonl + curves.png, renamed into place at once.

    The rolling checkpoint directory is removed afterwards: the run is complete, and a
    stale checkpoint must not be mistaken for a resumable one. Returns the decoder's
    ``meta.json`` as :func:`rpnt.decoders.base.read_meta` would read it back.
    """
    out = Path(out)
    with atomic_path(out) as tmp:
        save_decoder(decoder, tmp, **meta)
        for name in (METRICS_NAME, CURVES_NAME):
            src = Path(log_dir) / name
            if src.is_file():
                shutil.copy2(src, tmp / name)
    if ckpt_dir is not None:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    return json.loads(meta_text(decoder, **meta))

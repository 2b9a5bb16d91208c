"""Per-run training log: ``metrics.jsonl`` (one JSON record per line) and ``curves.png``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from rpnt.atomic import atomic_path, write_text

METRICS_NAME = "metrics.jsonl"
CURVES_NAME = "curves.png"


def write_history(log_dir: str | Path, history: Sequence[dict[str, Any]]) -> Path:
    """Atomically write all records to ``log_dir/metrics.jsonl``."""
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in history)
    return write_text(Path(log_dir) / METRICS_NAME, text)


def append_record(log_dir: str | Path, record: dict[str, Any]) -> None:
    """Append one record (used between full rewrites so a live run can be followed)."""
    with open(Path(log_dir) / METRICS_NAME, "a") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """Records of a ``metrics.jsonl`` file."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_curves(log_dir: str | Path, history: Sequence[dict[str, Any]], title: str = "") -> Path:
    """Plot training loss, validation loss and learning rate against step to curves.png."""
    train = [(r["step"], r["loss"]) for r in history if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in history if "val_loss" in r]
    lr = [(r["step"], r["lr"]) for r in history if "lr" in r]
    fig = Figure(figsize=(6, 5))  # no pyplot: no global figure state, no GUI backend
    ax, ax_lr = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss", lw=1)
    if val:
        ax.plot(*zip(*val, strict=True), "o-", label="validation loss", ms=3)
    ax.set_ylabel("loss")
    ax.legend(loc="upper right")
    ax.set_title(title or "training curves")
    if lr:
        ax_lr.plot(*zip(*lr, strict=True), color="gray", lw=1)
    ax_lr.set_ylabel("lr")
    ax_lr.set_xlabel("step")
    fig.tight_layout()
    final = Path(log_dir) / CURVES_NAME
    with atomic_path(final) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return final

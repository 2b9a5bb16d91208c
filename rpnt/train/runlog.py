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
    """Plot training loss, validation loss and learning rate against step to curves.png,
    one panel each (the two losses are different quantities on different scales)."""
    panels = [("training loss", [(r["step"], r["loss"]) for r in history if "loss" in r]),
              ("validation loss", [(r["step"], r["val_loss"]) for r in history
                                   if "val_loss" in r]),
              ("learning rate", [(r["step"], r["lr"]) for r in history if "lr" in r])]
    # no pyplot: no global figure state, no GUI backend
    fig = Figure(figsize=(6, 6), layout="constrained")
    axes = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [2, 2, 1]})
    for ax, (name, xy) in zip(axes, panels, strict=True):
        if xy:
            ax.plot(*zip(*xy, strict=True), "o-" if name == "validation loss" else "-",
                    color="gray" if name == "learning rate" else None, lw=1, ms=3)
        else:
            ax.text(0.5, 0.5, "no records", transform=ax.transAxes, ha="center",
                    color="0.5")
        ax.set_ylabel(name)
    axes[0].set_title(title or "training curves")
    axes[-1].set_xlabel("step")
    final = Path(log_dir) / CURVES_NAME
    with atomic_path(final) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return final

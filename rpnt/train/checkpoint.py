"""Rolling resume checkpoints: one file, written atomically, loaded with ``weights_only=True``.

A checkpoint holds everything needed to continue a run bit-identically: model, optimizer
and scheduler state dicts, the step, the best-so-far weights for early stopping, the
training history, and every RNG state (torch CPU/CUDA, the batch sampler's numpy
``Generator``, Python ``random``). Non-tensor state (numpy / Python RNG states, history)
is stored as JSON strings so that the file contains only tensors and plain containers:
``torch.load(weights_only=True)`` never unpickles arbitrary objects.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rpnt.atomic import atomic_path
from rpnt.errors import RpntError

#: File name of the rolling checkpoint inside a checkpoint directory.
CHECKPOINT_NAME = "last.pt"


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """All RNG states as weights_only-loadable values."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        # numpy's PCG64 state has 128-bit integers: JSON keeps them exact.
        "numpy": json.dumps(rng.bit_generator.state),
        "python": json.dumps(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], rng: np.random.Generator) -> None:
    """Restore what :func:`rng_state` captured (``rng`` is modified in place)."""
    torch.set_rng_state(state["torch"])
    rng.bit_generator.state = json.loads(state["numpy"])
    version, internal, gauss = json.loads(state["python"])
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(ckpt_dir: str | Path, state: dict[str, Any]) -> Path:
    """Atomically (re)write ``ckpt_dir/last.pt`` with ``state``."""
    final = Path(ckpt_dir) / CHECKPOINT_NAME
    with atomic_path(final) as tmp:
        torch.save(state, tmp)
    return final


def load_checkpoint(ckpt_dir: str | Path) -> dict[str, Any] | None:
    """The state in ``ckpt_dir/last.pt``, or None when there is none."""
    path = Path(ckpt_dir) / CHECKPOINT_NAME
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which and how to fix
        raise RpntError(f"{path}: not a readable rpnt checkpoint ({exc.__class__.__name__}: "
                        f"{exc}); delete it to start the run afresh") from exc

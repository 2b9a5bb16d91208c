"""Where tensors live: choosing the device and moving nested batches onto it."""

from __future__ import annotations

from typing import Any

import torch

from rpnt.errors import RpntError


def choose_device(name: str = "auto") -> torch.device:
    """``auto`` -> the first CUDA device if there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RpntError(f"device {name!r} requested but CUDA is not available; "
                        "use device: auto or cpu")
    return dev


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a nested dict/list/tuple to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch

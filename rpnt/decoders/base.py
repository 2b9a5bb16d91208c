"""The interface every velocity decoder implements, and its on-disk format.

A decoder is a ``torch.nn.Module`` that, given a session and window starts, predicts
velocity for each bin of each window. Evaluation (``rpnt.eval``) chooses overlapping
windows over test trials and stitches the predictions; it never needs to know the kind.

On disk a decoder is a directory (written atomically)::

    DIR/weights.safetensors   # state_dict: parameters and buffers (normalisation stats)
    DIR/meta.json             # {"kind", "hparams", "provenance", ...}

or, for a model that could not be trained here (POYO without torch-brain), a *skip
record* ``DIR/skip.json`` = ``{"model", "skipped": reason, ...}`` that evaluation passes
through and the table shows as the row's reason.

``load_decoder`` rebuilds the module from ``kind`` + ``hparams`` and loads the tensors with
safetensors: nothing is unpickled.
"""

from __future__ import annotations

import abc
import functools
import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from rpnt.atomic import atomic_path
from rpnt.data.session import SessionData
from rpnt.errors import RpntError

#: kind -> module that defines (and registers) the decoder class.
DECODER_MODULES: dict[str, str] = {
    "rpnt": "rpnt.decoders.rpnt_decoder",
    "wiener": "rpnt.decoders.wiener",
    "gru": "rpnt.decoders.gru",
    "ndt": "rpnt.decoders.ndt",
    "poyo": "rpnt.decoders.poyo",
}

#: File name of a skip record inside a model directory.
SKIP_NAME = "skip.json"

_REGISTRY: dict[str, type[Decoder]] = {}
_F = TypeVar("_F", bound=Callable[..., Any])


def register_decoder(cls: type[Decoder]) -> type[Decoder]:
    """Class decorator: make ``cls`` loadable by its ``kind``."""
    _REGISTRY[cls.kind] = cls
    return cls


class Decoder(nn.Module, abc.ABC):
    """Base class of velocity decoders.

    Subclasses set ``kind``, store everything needed to rebuild themselves in
    ``self.hparams`` (JSON-serialisable), and implement :meth:`predict_windows`.
    """

    kind: ClassVar[str] = ""

    def __init__(self, hparams: dict[str, Any]):
        super().__init__()
        self.hparams = dict(hparams)

    @abc.abstractmethod
    def predict_windows(
        self, session: SessionData, starts: np.ndarray, length: int
    ) -> np.ndarray:
        """Predict velocity for windows ``[s, s + length)`` of ``session``.

        Returns (n_windows, length, n_axis) float array in the session's velocity units
        (cm/s). A prediction for bin t may use only data at bins <= t (causal decoders).
        """


def inference(predict: _F) -> _F:
    """Decorator of :meth:`Decoder.predict_windows`: run it in eval mode (no dropout)
    under ``torch.no_grad()``, then restore the module's training mode, also on error
    (validation during training predicts with the model that is being trained)."""

    @functools.wraps(predict)
    def wrapper(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return predict(self, *args, **kwargs)
        finally:
            self.train(was_training)

    return wrapper  # type: ignore[return-value]


def meta_text(decoder: Decoder, **meta: Any) -> str:
    """The ``meta.json`` text :func:`save_decoder` writes (``json.loads`` of it is what
    :func:`read_meta` returns)."""
    record = {"kind": decoder.kind, "hparams": decoder.hparams, **meta}
    return json.dumps(record, indent=2, sort_keys=True, default=str) + "\n"


def save_decoder(decoder: Decoder, out_dir: str | Path, **meta: Any) -> Path:
    """Write ``decoder`` to ``out_dir`` atomically (see module docstring)."""
    out_dir = Path(out_dir)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        state = {k: v.detach().cpu().contiguous() for k, v in decoder.state_dict().items()}
        save_file(state, str(tmp / "weights.safetensors"))
        (tmp / "meta.json").write_text(meta_text(decoder, **meta))
    return out_dir


def read_meta(path: str | Path) -> dict[str, Any]:
    """The ``meta.json`` of a saved decoder."""
    meta_path = Path(path) / "meta.json"
    if not meta_path.is_file():
        raise RpntError(f"{path} is not a saved decoder (no meta.json); "
                        "pass the directory written by 'rpnt finetune' or 'rpnt baseline'")
    return json.loads(meta_path.read_text())


def load_decoder(path: str | Path, map_location: str | torch.device = "cpu") -> Decoder:
    """Rebuild a decoder saved by :func:`save_decoder` (safetensors: no unpickling)."""
    meta = read_meta(path)
    kind = meta.get("kind")
    if kind not in DECODER_MODULES:
        raise RpntError(f"{path}/meta.json: unknown decoder kind {kind!r}; "
                        f"known: {', '.join(sorted(DECODER_MODULES))}")
    importlib.import_module(DECODER_MODULES[kind])
    cls = _REGISTRY[kind]
    decoder = cls(meta["hparams"])
    state = load_file(str(Path(path) / "weights.safetensors"), device=str(map_location))
    decoder.load_state_dict(state)
    decoder.eval()
    return decoder


def write_skip(out_dir: str | Path, model: str, reason: str, **extra: Any) -> dict[str, Any]:
    """Write a model directory holding only ``skip.json`` (atomically); returns the record
    as :func:`read_skip` reads it back."""
    out_dir = Path(out_dir)
    text = json.dumps({"model": model, "skipped": reason, **extra}, indent=2, sort_keys=True,
                      default=str) + "\n"
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        (tmp / SKIP_NAME).write_text(text)
    return json.loads(text)


def read_skip(model_dir: str | Path) -> dict[str, Any] | None:
    """The skip record of ``model_dir``, or None when it holds a real decoder."""
    path = Path(model_dir) / SKIP_NAME
    if not path.is_file():
        return None
    rec = json.loads(path.read_text())
    if "model" not in rec or "skipped" not in rec:
        raise RpntError(f"{path}: a skip record needs 'model' and 'skipped'; "
                        "re-run the command that wrote it")
    return rec

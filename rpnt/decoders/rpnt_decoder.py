"""The RPNT velocity decoder: an :class:`rpnt.model.RPNT` plus what it needs at inference.

``hparams`` (JSON, in meta.json)::

    {"model": RPNTConfig.to_dict(), "eval_seed": 0,
     "vocab": {"subjects": [...], "tasks": [...], "readins": ["dataset/session/site", ...],
               "contexts": {"dataset/session/site": {"units": n, "day": d, "xyz": [...]}}}}

The model config is fitted to the vocabulary's sessions when the decoder is built
(``RPNTConfig.fitted``: unit slots for the largest site, rotary ranges from the data) and
stored so, like ``n_readins``; finetuning on a session with a larger site widens the slots.

Buffers ``vel_mean`` / ``vel_std`` (n_axis,) hold the normalisation of the training bins;
the model predicts normalised velocity and :meth:`RPNTDecoder.predict_windows` returns
cm/s.

Determinism at evaluation: each site's units fill the N slots in session order; with the
shared read-in, a site with more than N units uses its N most active units over the training bins
(:func:`rpnt.data.batches.eval_unit_choice`; ``eval_seed`` breaks ties), the same
subset for every window - and the same as finetuning with ``unit_sampling: fixed``. A
subject or task missing from the vocabulary gets the next free index (as at finetuning).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rpnt.data.batches import SessionWindows, Vocab, eval_unit_choice, readin_key
from rpnt.data.device import to_device
from rpnt.data.session import SessionData
from rpnt.decoders.base import Decoder, inference, register_decoder
from rpnt.errors import RpntError
from rpnt.model import RPNT, RPNTConfig


@register_decoder
class RPNTDecoder(Decoder):
    """RPNT + vocabularies + velocity normalisation (kind ``"rpnt"``)."""

    kind = "rpnt"

    def __init__(self, hparams: dict[str, Any]):
        super().__init__(hparams)
        self.config = RPNTConfig.from_saved(hparams["model"])
        self.model = RPNT(self.config)
        n_axis = self.config.n_axis
        self.register_buffer("vel_mean", torch.zeros(n_axis))
        self.register_buffer("vel_std", torch.ones(n_axis))

    @classmethod
    def build(cls, model_cfg: RPNTConfig, vocab: Vocab, eval_seed: int = 0) -> RPNTDecoder:
        """A fresh decoder from an RPNTConfig fitted to a :class:`rpnt.data.batches.Vocab`."""
        cfg = model_cfg.fitted(vocab.extent()).to_dict()
        if cfg.get("readin") == "session":  # one read-in row per site of each session
            cfg["n_readins"] = max(1, len(vocab.readins))
        return cls({"model": cfg, "vocab": vocab.to_dict(), "eval_seed": int(eval_seed)})

    @property
    def vocab(self) -> Vocab:
        return Vocab.from_dict(self.hparams["vocab"])

    def set_vocab(self, vocab: Vocab) -> None:
        """Adopt an extended vocabulary; a per-session read-in gets rows for new sessions
        (and unit slots for a site larger than any before)."""
        self.hparams["vocab"] = vocab.to_dict()
        if self.config.readin == "session":
            self.model.grow_readins(len(vocab.readins))
            self.model.grow_units(vocab.extent().max_units)
            self.hparams["model"] = self.config.to_dict()

    def set_normalisation(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Velocity statistics (n_axis,) of the training bins, in cm/s."""
        self.vel_mean.copy_(torch.as_tensor(np.asarray(mean), dtype=torch.float32))
        self.vel_std.copy_(torch.as_tensor(np.asarray(std), dtype=torch.float32))

    def windows(self, session: SessionData, length: int | None = None) -> SessionWindows:
        """A :class:`rpnt.data.batches.SessionWindows` of ``session`` for this decoder."""
        vocab = Vocab.from_sessions([session], base=self.vocab)
        if self.config.readin == "session":
            missing = [s for s in session.sites
                       if readin_key(session, s) not in self.vocab.readins]
            if missing:
                raise RpntError(f"session {session.session}: this RPNT has a per-session "
                                f"read-in and none for its sites {missing}; finetune it on "
                                "this session first (rpnt finetune)")
        return SessionWindows(session, vocab, self.config.coords, self.config.n_units,
                              length or self.config.window,
                              allowed=np.ones(session.n_time, bool))

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        """Normalised velocity (B, T, n_axis) of a batch from :mod:`rpnt.data.batches`."""
        return self.model.velocity(batch["counts"], batch["unit_mask"], batch["coords"],
                                   batch["site_mask"], readin=batch["readin"])

    @inference
    def predict_windows(self, session: SessionData, starts: np.ndarray, length: int,
                        chunk: int = 256) -> np.ndarray:
        """Velocity (n_windows, length, n_axis) in cm/s for windows ``[s, s + length)``."""
        starts = np.asarray(starts, dtype=np.int64)
        n_axis = self.config.n_axis
        if starts.size == 0:
            return np.zeros((0, length, n_axis), np.float32)
        sw = self.windows(session, length)
        units = eval_unit_choice(sw, 1, seed=int(self.hparams.get("eval_seed", 0)))
        device = self.vel_mean.device
        out = []
        for i in range(0, starts.size, chunk):
            part = starts[i:i + chunk]
            batch = sw.make_batch(part, np.repeat(units, part.size, axis=0),
                                  with_velocity=False)
            pred = self(to_device(batch, device)).float()
            out.append((pred * self.vel_std + self.vel_mean).cpu().numpy())
        return np.concatenate(out).astype(np.float32)

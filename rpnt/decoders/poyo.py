"""POYO peer (Azabou et al. 2023) from ``torch-brain==0.2.1``, on the store's raw spikes.

One token per spike (unit embedding + rotary time), plus a start and an end token per
unit, PerceiverIO latents every ``latent_step`` seconds, and one output query per bin
centre; see ``torch_brain.models.POYO``. The model reads every spike of the window, so
unlike the binned baselines it is not causal inside a window (as published).

torch-brain is optional (the ``peers`` extra): this module imports without it, and
:func:`rpnt.provenance.poyo_available` says whether it is installed and
:data:`SKIP_REASON` is what the benchmark reports when it is not. Training is in
:mod:`rpnt.train.peers`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rpnt import provenance as prov
from rpnt.data.session import SessionData
from rpnt.decoders.base import Decoder, inference, register_decoder
from rpnt.errors import RpntError
from rpnt.fields import check_fields, setting

#: What the benchmark reports for POYO when torch-brain is missing.
SKIP_REASON = "torch-brain not installed"


@dataclass
class POYOParams:
    """Architecture of the POYO peer (config ``baselines.poyo``)."""

    dim: int = setting(64, minimum=1)  #: model width
    depth: int = setting(2, minimum=1)  #: latent self-attention layers
    dim_head: int = setting(32, minimum=1)  #: width of an attention head
    cross_heads: int = setting(1, minimum=1)  #: heads of the cross-attention
    self_heads: int = setting(2, minimum=1)  #: heads of the latent self-attention
    num_latents_per_step: int = setting(8, minimum=1)  #: latents per latent time step
    latent_step: float = setting(0.1, exclusive_minimum=0)  #: seconds between latent steps
    ffn_dropout: float = setting(0.2, minimum=0, maximum=1)  #: dropout in the feed-forward
    lin_dropout: float = setting(0.2, minimum=0, maximum=1)  #: dropout on linear outputs
    atn_dropout: float = setting(0.0, minimum=0, maximum=1)  #: dropout of attention weights
    #: window length in bins (sequence_length = window_bins * bin)
    window_bins: int = setting(50, minimum=1)

    def __post_init__(self) -> None:
        check_fields(self, "baselines.poyo")


def _vocab_keys(module: torch.nn.Module) -> list[str]:
    return [n + ".vocab" for n, m in module.named_modules() if hasattr(m, "vocab")]


@register_decoder
class POYODecoder(Decoder):
    """Wrapper of ``torch_brain.models.POYO`` with per-axis velocity normalisation.

    hparams: n_unit, n_axis, window_bins, bin_size_s, unit_ids (list of str), session_id,
    and the :class:`POYOParams` fields. Buffers ``vel_mean``/``vel_std`` (n_axis,).
    """

    kind = "poyo"

    def __init__(self, hparams: dict[str, Any]):
        super().__init__(hparams)
        if not prov.poyo_available():
            raise RpntError(f"POYO needs torch-brain ({SKIP_REASON}); install "
                            "the peers extra: pip install 'rpnt[peers]'")
        from torch_brain.models import POYO  # here: torch-brain is optional

        h = self.hparams
        self.seq_len_s = float(h["window_bins"]) * float(h["bin_size_s"])
        self.poyo = POYO(
            sequence_length=self.seq_len_s, latent_step=float(h["latent_step"]),
            num_latents_per_step=int(h["num_latents_per_step"]), dim_out=int(h["n_axis"]),
            dim=int(h["dim"]), depth=int(h["depth"]), dim_head=int(h["dim_head"]),
            cross_heads=int(h["cross_heads"]), self_heads=int(h["self_heads"]),
            ffn_dropout=float(h["ffn_dropout"]), lin_dropout=float(h["lin_dropout"]),
            atn_dropout=float(h["atn_dropout"]),
        )
        # Vocabularies are rebuilt from hparams, so the saved state holds tensors only.
        self.poyo.unit_emb.initialize_vocab([f"{h['session_id']}/{u}" for u in h["unit_ids"]])
        self.poyo.session_emb.initialize_vocab([h["session_id"]])
        self.register_buffer("vel_mean", torch.zeros(int(h["n_axis"])))
        self.register_buffer("vel_std", torch.ones(int(h["n_axis"])))

    # The torch-brain embeddings put their vocabulary (a dict) into state_dict; it is not
    # a tensor (safetensors cannot hold it) and is fully determined by hparams.
    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        state = super().state_dict(*args, **kwargs)
        for key in [k for k in state if k.endswith(".vocab")]:
            del state[key]
        return state

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False):
        state = dict(state_dict)
        for key in _vocab_keys(self):
            mod = self.get_submodule(key[: -len(".vocab")])
            state[key] = mod.vocab.copy()
        return super().load_state_dict(state, strict=strict, assign=assign)

    def tokens(self, session: SessionData, starts: np.ndarray, length: int) -> dict:
        """Padded POYO inputs for windows ``[s, s + length)``, vectorised over windows.

        Returns tensors: input_unit_index / input_timestamps / input_token_type /
        input_mask (B, 2N + S_max), latent_index / latent_timestamps (B, L),
        session_index (B,), output_timestamps (B, length). Times are seconds from the
        window start; spikes in [t0, t0 + length * bin), or, on bins with gaps (FALCON),
        up to the end of the window's last bin, each output at its own bin's centre.
        """
        if session.spike_times is None or session.spike_unit is None:
            raise RpntError(f"session {session.session} has no raw spike times; POYO needs "
                            "a store with spike_times/spike_unit")
        if length != int(self.hparams["window_bins"]):
            raise RpntError(f"POYO was built for windows of {self.hparams['window_bins']} "
                            f"bins, asked for {length}")
        from torch_brain.models.poyo import (  # here: torch-brain is optional
            create_linspace_latent_tokens,
            create_start_end_unit_tokens,
        )

        starts = np.asarray(starts, dtype=np.int64)
        b, n = starts.size, session.n_unit
        dt = float(session.bin_size_s)
        t0 = session.time[starts]
        out_t = (np.arange(length) + 0.5) * dt
        end = t0 + length * dt
        if not session.contiguous:  # bins with gaps (FALCON): each bin at its own time
            out_t = session.time[starts[:, None] + np.arange(length)] - t0[:, None] + 0.5 * dt
            end = session.time[starts + length - 1] + dt
        lo = np.searchsorted(session.spike_times, t0, side="left")
        hi = np.searchsorted(session.spike_times, end, side="left")
        n_spk = hi - lo
        s_max = max(int(n_spk.max(initial=0)), 1)
        col = np.arange(s_max)
        valid = col[None, :] < n_spk[:, None]
        idx = np.minimum(lo[:, None] + col[None, :], max(session.spike_times.size - 1, 0))
        spk_t = np.where(valid, session.spike_times[idx] - t0[:, None], 0.0)
        spk_u = np.where(valid, session.spike_unit[idx] + 1, 0)  # vocab index 0 = "NA"
        se_type, se_unit, se_time = create_start_end_unit_tokens(np.arange(n), 0.0,
                                                                 self.seq_len_s)
        unit = np.concatenate([np.broadcast_to(se_unit + 1, (b, 2 * n)), spk_u], 1)
        ts = np.concatenate([np.broadcast_to(se_time, (b, 2 * n)), spk_t], 1)
        ttype = np.concatenate([np.broadcast_to(se_type, (b, 2 * n)),
                                np.zeros((b, s_max), dtype=np.int64)], 1)
        mask = np.concatenate([np.ones((b, 2 * n), dtype=bool), valid], 1)
        lat_i, lat_t = create_linspace_latent_tokens(
            0.0, self.seq_len_s, float(self.hparams["latent_step"]),
            int(self.hparams["num_latents_per_step"]))
        dev = self.vel_mean.device

        def tt(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=dev)

        return {
            "input_unit_index": tt(unit, torch.long),
            "input_timestamps": tt(ts, torch.float32),
            "input_token_type": tt(ttype, torch.long),
            "input_mask": tt(mask, torch.bool),
            "latent_index": tt(np.broadcast_to(lat_i, (b, lat_i.size)), torch.long),
            "latent_timestamps": tt(np.broadcast_to(lat_t, (b, lat_t.size)), torch.float32),
            "session_index": torch.ones(b, dtype=torch.long, device=dev),
            "output_timestamps": tt(np.array(np.broadcast_to(out_t, (b, length))),
                                    torch.float32),
        }

    def forward(self, tokens: dict) -> torch.Tensor:
        """Tokens of :meth:`tokens` -> (B, length, A) z-scored velocity."""
        return self.poyo(**tokens)

    def check_session(self, session: SessionData) -> None:
        if list(session.unit_id.astype(str)) != list(self.hparams["unit_ids"]):
            raise RpntError(f"POYO decoder was trained on other units than those of session "
                            f"{session.session}; evaluate on the store (and --scenario) it "
                            "was trained on")

    @inference
    def predict_windows(
        self, session: SessionData, starts: np.ndarray, length: int
    ) -> np.ndarray:
        """(n_windows, length, n_axis) velocity in cm/s from the spikes of each window."""
        self.check_session(session)
        y = self(self.tokens(session, starts, length)) * self.vel_std + self.vel_mean
        return y.float().cpu().numpy()

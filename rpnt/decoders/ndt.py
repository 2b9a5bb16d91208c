"""NDT-style baseline: a plain causal transformer over binned counts.

One token per time bin (``Linear(N, d)`` of the z-scored count vector) plus a learned
position embedding, pre-LayerNorm transformer blocks with a causal mask, and two heads:
velocity (``Linear(d, A)``) and, for the optional masked-modelling pretraining on the same
session's training bins, Poisson log-rates of the counts (``Linear(d, N)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rpnt.decoders.base import register_decoder
from rpnt.decoders.binned import BinnedDecoder
from rpnt.fields import check_fields, setting


@dataclass
class NDTParams:
    """Architecture of the NDT-style baseline (config ``baselines.ndt``)."""

    d_model: int = setting(64, minimum=1)  #: model width
    layers: int = setting(2, minimum=1)  #: transformer layers
    heads: int = setting(4, minimum=1)  #: attention heads
    dropout: float = setting(0.1, minimum=0, maximum=1)  #: dropout
    #: training and evaluation window length (bins); max length
    window_bins: int = setting(50, minimum=1)

    def __post_init__(self) -> None:
        check_fields(self, "baselines.ndt")


@register_decoder
class NDTDecoder(BinnedDecoder):
    """Causal transformer decoder (see module docstring).

    hparams: n_unit, n_axis, window_bins, d_model, layers, heads, dropout.
    """

    kind = "ndt"

    def __init__(self, hparams: dict[str, Any]):
        super().__init__(hparams)
        n_unit, n_axis = int(hparams["n_unit"]), int(hparams["n_axis"])
        d, drop = int(hparams["d_model"]), float(hparams["dropout"])
        self.embed = nn.Linear(n_unit, d)
        self.pos = nn.Parameter(torch.zeros(int(hparams["window_bins"]), d))
        nn.init.normal_(self.pos, std=0.02)
        self.drop = nn.Dropout(drop)
        layer = nn.TransformerEncoderLayer(d, int(hparams["heads"]), dim_feedforward=4 * d,
                                           dropout=drop, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, int(hparams["layers"]),
                                            enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.vel_head = nn.Linear(d, n_axis)
        self.rate_head = nn.Linear(d, n_unit)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, N) z-scored counts -> (B, T, d) causal features (bin t sees bins <= t)."""
        t = x.shape[1]
        if t > self.pos.shape[0]:
            raise ValueError(f"window of {t} bins exceeds the NDT maximum {self.pos.shape[0]}")
        h = self.drop(self.embed(x) + self.pos[:t])
        causal = nn.Transformer.generate_square_subsequent_mask(t, device=x.device)
        return self.norm(self.blocks(h, mask=causal, is_causal=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, N) z-scored counts -> (B, T, A) z-scored velocity."""
        return self.vel_head(self.encode(x))

    def log_rates(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, N) (masked) z-scored counts -> (B, T, N) Poisson log-rates per bin."""
        return self.rate_head(self.encode(x))

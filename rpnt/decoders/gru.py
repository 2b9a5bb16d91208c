"""GRU baseline: a causal recurrent network over binned counts -> velocity per bin."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rpnt.decoders.base import register_decoder
from rpnt.decoders.binned import BinnedDecoder
from rpnt.fields import check_fields, setting


@dataclass
class GRUParams:
    """Architecture of the GRU baseline (config ``baselines.gru``)."""

    hidden: int = setting(128, minimum=1)  #: GRU state size
    layers: int = setting(1, minimum=1)  #: stacked GRU layers
    dropout: float = setting(0.1, minimum=0, maximum=1)  #: on the input and between layers
    window_bins: int = setting(50, minimum=1)  #: training and evaluation window (bins)

    def __post_init__(self) -> None:
        check_fields(self, "baselines.gru")


@register_decoder
class GRUDecoder(BinnedDecoder):
    """Input dropout -> Linear(N, H) -> GRU(H, H, layers) -> Linear(H, A), per bin.

    hparams: n_unit, n_axis, window_bins, hidden, layers, dropout. The recurrence starts
    from a zero state at each window start, so predictions use bins of the window only.
    """

    kind = "gru"

    def __init__(self, hparams: dict[str, Any]):
        super().__init__(hparams)
        n_unit, n_axis = int(hparams["n_unit"]), int(hparams["n_axis"])
        hidden, layers = int(hparams["hidden"]), int(hparams["layers"])
        drop = float(hparams["dropout"])
        self.inp = nn.Sequential(nn.Dropout(drop), nn.Linear(n_unit, hidden))
        self.gru = nn.GRU(hidden, hidden, num_layers=layers, batch_first=True,
                          dropout=drop if layers > 1 else 0.0)
        self.out = nn.Linear(hidden, n_axis)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, N) z-scored counts -> (B, T, A) z-scored velocity."""
        h, _ = self.gru(self.inp(x))
        return self.out(h)

"""The RPNT encoder: site tokens, positions, causal temporal layers, cross-site layers.

Tokens are one per (site, bin): ``Linear(N -> d)`` of the site's N-unit count vector
(padded unit slots zeroed; counts hidden by the pretraining mask zeroed too, and with
``mask_input: learned`` their indicator embedded). Temporal layers attend causally over
the bins of one site, after a prefix of context tokens (one per metadata coordinate,
``context_tokens: shared``); spatial layers then attend across the sites at each bin (no
time mixing, so causality is kept). With one site the spatial layers see a single key
and reduce to a per-token map.

Rotary positions (:meth:`Encoder.positions`): bin t of a site sits at time t, at its
site's x/y/z, and - with context tokens under MRoPE - at 0 on the metadata axes; the
context token of metadata coordinate m sits at time -1, at the window's value of m and 0
on the other metadata axes. q.k depends on coordinate differences only, so what the
metadata bands see is the window's subject, date and task relative to the data tokens.
Without context tokens (or with ``mrope_legacy``) every token sits at the window's
metadata values, which then cancel in q.k (the released behaviour).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rpnt.errors import RpntError
from rpnt.model.attention import MultiHeadAttention
from rpnt.model.config import META_COORDS, RPNTConfig
from rpnt.model.dropout import Dropout
from rpnt.model.readin import ContextLinear
from rpnt.model.rope import RotaryEmbedding, sinusoidal_table


@dataclass
class EncoderOutput:
    """What :meth:`rpnt.model.RPNT.encode` returns.

    h: (B, S, T, d) per-site tokens after the temporal and spatial layers (final LayerNorm).
    pooled: (B, T, d) mean of ``h`` over real sites.
    spatial_attn: list (one per spatial layer) of (B, T, H, S, S) cross-site attention
        probabilities (query site, key site), or None unless requested.
    """

    h: torch.Tensor
    pooled: torch.Tensor
    spatial_attn: list[torch.Tensor] | None = None


class Block(nn.Module):
    """Pre-LayerNorm transformer block: attention, then a 4x GELU MLP, each with dropout."""

    def __init__(self, cfg: RPNTConfig, kind: str, causal: bool):
        super().__init__()
        d = cfg.d_model
        self.norm1 = nn.LayerNorm(d)
        self.attn = MultiHeadAttention(d, cfg.n_heads, cfg.dropout, kind=kind, causal=causal,
                                       kernel_size=cfg.kernel_size, ctx_dim=cfg.ctx_dim)
        self.norm2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), Dropout(cfg.dropout),
                                 nn.Linear(4 * d, d))
        self.drop = Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, angles: torch.Tensor | None = None,
                key_mask: torch.Tensor | None = None,
                need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, L, d) -> (B, L, d), attention probabilities (B, H, L, L) or None."""
        a, w = self.attn(self.norm1(x), angles, key_mask, need_weights)
        x = x + self.drop(a)
        return x + self.drop(self.mlp(self.norm2(x))), w


class Encoder(nn.Module):
    """Token embedding, position encoding and the temporal + spatial layer stacks."""

    def __init__(self, cfg: RPNTConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.embed = ContextLinear(cfg.n_units, d, cfg.n_readins)
        self.embed_drop = Dropout(cfg.dropout)
        self.rotary: RotaryEmbedding | None = None
        self.learned_pos: nn.Parameter | None = None
        if cfg.pos_encoding in ("mrope", "rope_time", "mrope_legacy"):
            mode = "legacy" if cfg.pos_encoding == "mrope_legacy" else "mrope"
            coords = cfg.rotary_coords()
            ranges = ({c: cfg.wavelength_range(c) for c in coords}
                      if cfg.rope_frequencies == "ranges" else None)
            self.rotary = RotaryEmbedding(cfg.head_dim, coords, cfg.rope_bases,
                                          cfg.rope_shares, mode=mode, wavelengths=ranges)
        elif cfg.pos_encoding == "sinusoidal":
            self.register_buffer("sin_pos", sinusoidal_table(cfg.window, d), persistent=False)
        elif cfg.pos_encoding == "learned":
            self.learned_pos = nn.Parameter(torch.randn(cfg.window, d) * 0.02)
        self.temporal = nn.ModuleList(Block(cfg, cfg.attention, causal=True)
                                      for _ in range(cfg.n_layers))
        # Sites have no order and no past/future: plain, non-causal attention across them.
        self.spatial = nn.ModuleList(Block(cfg, "standard", causal=False)
                                     for _ in range(cfg.n_spatial_layers))
        self.norm = nn.LayerNorm(d)
        # Learned embedding of the hidden-entry indicator, per read-in row like the read-in
        # (slot i is another unit in every session): a hidden count differs from a zero
        # one, and a fully hidden bin becomes a learned per-session [MASK] token.
        self.mask_embed = (ContextLinear(cfg.n_units, d, cfg.n_readins, bias=False)
                           if cfg.mask_input == "learned" else None)
        #: metadata coordinates with a context token, in the order of the prefix
        self.meta = (tuple(c for c in cfg.coords if c in META_COORDS)
                     if cfg.has_context_tokens() else ())
        self.ctx_tokens = (nn.Parameter(torch.randn(len(self.meta), d) * 0.02)
                           if self.meta else None)

    def check_inputs(self, counts: torch.Tensor, unit_mask: torch.Tensor,
                     coords: dict[str, torch.Tensor] | None,
                     site_mask: torch.Tensor | None) -> None:
        """Raise :class:`RpntError` on shapes that do not match the config."""
        cfg = self.cfg
        if counts.dim() != 4 or counts.shape[-1] != cfg.n_units:
            raise RpntError(f"RPNT input: counts must be (batch, sites, bins, {cfg.n_units}), "
                            f"got {tuple(counts.shape)}; subsample or pad units to n_units")
        b, s, t, n = counts.shape
        if t > cfg.window and cfg.pos_encoding in ("learned", "sinusoidal"):
            raise RpntError(f"RPNT input: {t} bins exceed the model window {cfg.window}")
        if tuple(unit_mask.shape) != (b, s, n):
            raise RpntError(f"RPNT input: unit_mask must be {(b, s, n)}, "
                            f"got {tuple(unit_mask.shape)}")
        if site_mask is not None:
            if tuple(site_mask.shape) != (b, s):
                raise RpntError(f"RPNT input: site_mask must be {(b, s)}, "
                                f"got {tuple(site_mask.shape)}")
            if not bool(site_mask.any(dim=1).all()):
                raise RpntError("RPNT input: every sample needs at least one real site "
                                "(site_mask has an all-False row)")
        for c in cfg.rotary_coords():
            if c == "time":
                continue
            if coords is None or c not in coords:
                raise RpntError(f"RPNT input: coordinate {c!r} missing from coords; "
                                f"pass coords[{c!r}] as a (batch, sites) tensor")
            if tuple(coords[c].shape) != (b, s):
                raise RpntError(f"RPNT input: coords[{c!r}] must be {(b, s)}, "
                                f"got {tuple(coords[c].shape)}")

    def scaled(self, coords: dict[str, torch.Tensor], c: str,
               device: torch.device) -> torch.Tensor:
        """(B, S) float64 position of coordinate ``c`` (x coord_scales under rule bases)."""
        scale = (float(self.cfg.coord_scales.get(c, 1.0))
                 if self.cfg.rope_frequencies == "bases" else 1.0)
        return coords[c].to(device).double() * scale

    def positions(self, coords: dict[str, torch.Tensor] | None, b: int, s: int, t: int,
                  device: torch.device) -> torch.Tensor | None:
        """(B, S, C + T, n_rotary) float64 rotary positions of each site's temporal
        sequence: the C context tokens, then the T bins (module docstring); None without
        rotary encoding."""
        if self.rotary is None:
            return None
        n_ctx = len(self.meta)
        # Data tokens at the metadata origin only where context tokens carry the metadata
        # and each band has its own coordinate (mrope, not the legacy defect).
        anchored = n_ctx > 0 and self.rotary.mode == "mrope"
        pos = torch.zeros(b, s, n_ctx + t, len(self.rotary.coords), dtype=torch.float64,
                          device=device)
        for ci, c in enumerate(self.rotary.coords):
            if c == "time":
                pos[:, :, :n_ctx, ci] = -1.0
                pos[:, :, n_ctx:, ci] = torch.arange(t, dtype=torch.float64, device=device)
                continue
            value = self.scaled(coords, c, device)[:, :, None]  # (B, S, 1)
            if anchored and c in self.meta:
                pos[:, :, self.meta.index(c), ci] = value[..., 0]
            else:
                pos[..., ci] = value
        return pos

    def forward(self, counts: torch.Tensor, unit_mask: torch.Tensor,
                coords: dict[str, torch.Tensor] | None = None,
                site_mask: torch.Tensor | None = None,
                return_attention: bool = False,
                readin: torch.Tensor | None = None,
                hidden: torch.Tensor | None = None) -> EncoderOutput:
        """counts (B, S, T, N), unit_mask (B, S, N) -> :class:`EncoderOutput`.

        ``readin`` (B, S) int64: the read-in row of each (sample, site) (``readin:
        session``); None uses row 0 (the only row of a shared read-in).
        ``hidden`` (B, S, T, N) bool: counts hidden from the encoder (masked for
        reconstruction). Their values never reach it; with ``mask_input: learned`` the
        indicator is embedded, so a hidden entry and a true zero give different inputs.
        """
        self.check_inputs(counts, unit_mask, coords, site_mask)
        b, s, t, _ = counts.shape
        dtype = self.embed.weight.dtype
        real = unit_mask.bool()[:, :, None, :]
        keep = real if hidden is None else real & ~hidden.bool()
        # where(), not a product: a hidden NaN or inf must not reach the encoder either
        x = self.embed(torch.where(keep, counts.to(dtype), 0.0), readin)
        if hidden is not None and self.mask_embed is not None:
            x = x + self.mask_embed((real & hidden.bool()).to(dtype), readin)
        if self.cfg.pos_encoding == "sinusoidal":
            x = x + self.sin_pos[:t]
        elif self.learned_pos is not None:
            x = x + self.learned_pos[:t]
        x = self.embed_drop(x)  # (B, S, T, d)
        pos = self.positions(coords, b, s, t, counts.device)
        angles = None if pos is None else self.rotary.angles(pos)  # (B, S, C+T, half)
        n_ctx = len(self.meta)

        # Temporal layers: each site is its own causal sequence of C context tokens (every
        # bin may attend to them; they see only each other) and then its T bins.
        xt = x.reshape(b * s, t, -1)
        if n_ctx:
            xt = torch.cat([self.ctx_tokens.to(xt.dtype).expand(b * s, -1, -1), xt], dim=1)
        at = None if angles is None else angles.reshape(b * s, n_ctx + t, -1)
        for blk in self.temporal:
            xt, _ = blk(xt, at)
        x = xt[:, n_ctx:].reshape(b, s, t, -1)
        angles = None if angles is None else angles[:, :, n_ctx:]

        # Spatial layers: at each bin, the S site tokens attend to each other.
        maps: list[torch.Tensor] = []
        if self.spatial:
            xs = x.transpose(1, 2).reshape(b * t, s, -1)
            as_ = None if angles is None else angles.transpose(1, 2).reshape(b * t, s, -1)
            km = None
            if site_mask is not None:
                km = site_mask.to(x.device)[:, None, :].expand(b, t, s).reshape(b * t, s)
            for blk in self.spatial:
                xs, w = blk(xs, as_, km, need_weights=return_attention)
                if w is not None:
                    maps.append(w.view(b, t, *w.shape[1:]))
            x = xs.view(b, t, s, -1).transpose(1, 2)
        h = self.norm(x)

        if site_mask is None:
            pooled = h.mean(dim=1)
        else:
            wts = site_mask.to(h.device, h.dtype)[:, :, None, None]
            pooled = (h * wts).sum(1) / wts.sum(1)
        return EncoderOutput(h=h, pooled=pooled,
                             spatial_attn=maps if (return_attention and maps) else None)

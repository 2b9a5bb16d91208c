"""The RPNT model: encoder + pretraining reconstruction decoder + velocity head."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from rpnt.model.config import RPNTConfig
from rpnt.model.encoder import Encoder, EncoderOutput
from rpnt.model.objectives import (
    draw_mask_ratios,
    global_mean,
    poisson_nll,
    site_contrastive,
    time_block_mask,
    unit_drop_mask,
)
from rpnt.model.readin import ContextLinear

Coords = dict[str, torch.Tensor]

#: Smallest hidden width of the decoder and velocity head MLPs.
MIN_HIDDEN = 16


class RPNT(nn.Module):
    """Robust Pre-trained Neural Transformer.

    Inputs everywhere: ``counts`` (B, S, T, N) float spike counts (S sites, T bins, N unit
    slots), ``unit_mask`` (B, S, N) bool (True = real unit), ``coords`` a dict of (B, S)
    float tensors, one per name in ``cfg.coords`` (the bin index is implicit), and
    ``site_mask`` (B, S) bool (True = real site) or None (all real). Site ``s`` should be
    the same recording site across the samples of a batch (site contrast uses it as a class).
    ``readin`` (B, S) int64 names each (sample, site)'s row of the per-session read-in and
    read-out (``cfg.readin == "session"``); None means row 0.
    """

    def __init__(self, cfg: RPNTConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.encoder = Encoder(cfg)
        # Hidden widths follow the released code (d/2, d/4; d/4, d/16) but never drop below
        # MIN_HIDDEN: at d=32 the velocity head's d/16 = 2 GELU units were a bottleneck
        # that cannot carry two signed velocity axes (GELU zeroes half of each unit's
        # range; docs/measurements.md "Measured training fixes"). Sizes from d=256 up are unchanged.
        w = lambda x: max(x, MIN_HIDDEN)  # noqa: E731
        # Reconstruction decoder d -> d/2 -> d/4 -> N; softplus keeps rates non-negative.
        # The last map reads out unit slots, so it is per session like the read-in.
        self.decoder = nn.Sequential(nn.Linear(d, w(d // 2)), nn.GELU(),
                                     nn.Linear(w(d // 2), w(d // 4)), nn.GELU())
        self.readout = ContextLinear(w(d // 4), cfg.n_units, cfg.n_readins)
        # Per-bin velocity head d -> d/4 -> d/16 -> n_axis on the site-pooled tokens.
        self.velocity_head = nn.Sequential(nn.Linear(d, w(d // 4)), nn.GELU(),
                                           nn.Linear(w(d // 4), w(d // 16)), nn.GELU(),
                                           nn.Linear(w(d // 16), cfg.n_axis))

    def encode(self, counts: torch.Tensor, unit_mask: torch.Tensor, coords: Coords | None,
               site_mask: torch.Tensor | None = None, *, return_attention: bool = False,
               readin: torch.Tensor | None = None,
               hidden: torch.Tensor | None = None) -> EncoderOutput:
        """Encode a batch of windows.

        ``hidden`` (B, S, T, N) bool: counts hidden from the encoder (True = masked for
        reconstruction; ``cfg.mask_input`` says how they enter it). Returns
        :class:`EncoderOutput` with ``h`` (B, S, T, d), ``pooled`` (B, T, d) and,
        with ``return_attention=True`` and spatial layers, ``spatial_attn``: a list of
        (B, T, H, S, S) cross-site attention maps (else None).
        """
        return self.encoder(counts, unit_mask, coords, site_mask, return_attention, readin,
                            hidden)

    def rates(self, h: torch.Tensor, readin: torch.Tensor | None = None) -> torch.Tensor:
        """(B, S, T, d) tokens -> (B, S, T, N) non-negative Poisson rates (counts per bin)."""
        return F.softplus(self.readout(self.decoder(h), readin))

    def pretrain_loss(self, counts: torch.Tensor, unit_mask: torch.Tensor, coords: Coords | None,
                      site_mask: torch.Tensor | None = None,
                      generator: torch.Generator | None = None,
                      readin: torch.Tensor | None = None, *,
                      window: torch.Tensor | None = None,
                      velocity: torch.Tensor | None = None,
                      velocity_weight: float = 0.0,
                      draws: Mapping[str, torch.Tensor] | None = None,
                      across_ranks: bool = False) -> dict[str, torch.Tensor]:
        """Masked causal reconstruction (+ site contrast) (+ velocity) on one batch.

        Draws the two mask ratios and the unit mask with ``generator`` (CPU generator),
        hides the masked inputs from the encoder (``mask_input``), and scores the masked
        entries. ``window`` (B,) int64: samples with the same id are copies of one window
        (unit subsets), never negatives of each other in the site contrast.

        Joint objective (``velocity`` (B, T, n_axis) normalised targets, NaN where
        unknown, and ``velocity_weight`` > 0): the last ``B // 2`` windows of the batch
        are left unmasked, the input finetuning and evaluation give, and decoded by the
        velocity head (MSE over finite targets); the others are masked and
        reconstructed. One forward pass either way. (Decoding masked windows instead does
        not learn velocity: docs/model.md.)

        Data parallel (a batch split over ranks): ``draws`` carries the batch sampler's
        random draws, so one sample is masked alike whatever rank holds it: ``mask_u``
        (2,) U(0, 1) for the two ratios, ``unit_keys`` (B, S, N) U(0, 1), ``row`` (B,)
        the samples' rows in the whole batch and ``rows`` () its size (the decoded
        half of the joint objective is the last half of the *whole* batch).
        ``across_ranks``: every mean is over the whole batch of all ranks and the site
        contrast sees every rank's samples (rpnt.model.objectives).

        Returns ``{"loss", "poisson", "contrastive", "velocity", "time_ratio",
        "unit_ratio"}`` (scalar tensors; ``loss = poisson + contrastive_weight *
        contrastive + velocity_weight * velocity``; ``velocity`` is 0 without targets).
        """
        cfg = self.cfg
        b, _, t, _ = counts.shape
        self.encoder.check_inputs(counts, unit_mask, coords, site_mask)
        unit_mask = unit_mask.bool()
        draws = draws or {}
        r_t, r_u = draw_mask_ratios(cfg, generator, draws.get("mask_u"))
        tmask = time_block_mask(t, r_t, counts.device)  # (T,)
        umask = unit_drop_mask(unit_mask, r_u, generator, draws.get("unit_keys"))  # (B, S, N)
        hidden = tmask[None, None, :, None] | umask[:, :, None, :]  # (B, S, T, N)
        decode = None  # joint: the samples decoded unmasked, the last half of the batch
        if velocity is not None and velocity_weight > 0:
            row = draws.get("row")
            if row is None:
                decode = slice(b - b // 2, b)
            else:
                total = int(draws["rows"])
                decode = row.to(counts.device) >= total - total // 2
            hidden = hidden.clone()
            hidden[decode] = False  # the decoded windows are seen whole
        real = unit_mask[:, :, None, :]
        if site_mask is not None:
            real = real & site_mask.bool()[:, :, None, None]
        scored = hidden & real
        out = self.encode(counts, unit_mask, coords, site_mask, readin=readin, hidden=hidden)
        poisson = poisson_nll(self.rates(out.h, readin), counts, scored,
                              across_ranks=across_ranks)
        if cfg.contrastive == "none":
            contrast = out.h.sum() * 0.0
        else:
            z = out.h.mean(dim=2)  # (B, S, d) per-site mean representation
            contrast = site_contrastive(z, site_mask, cfg.contrastive,
                                        cfg.contrastive_temperature, window=window,
                                        across_ranks=across_ranks)
        loss = poisson + cfg.contrastive_weight * contrast
        vel_loss = poisson.detach() * 0.0
        if decode is not None:
            pred = self.velocity_head(out.pooled[decode])  # (B/2, T, n_axis)
            target = velocity[decode].to(pred.dtype)
            known = torch.isfinite(target)
            err = (pred - torch.nan_to_num(target)).square() * known
            vel_loss = global_mean(err.sum(), known.sum(), across_ranks)
            loss = loss + velocity_weight * vel_loss
        as_t = lambda v: torch.tensor(v, dtype=poisson.dtype)  # noqa: E731
        return {"loss": loss, "poisson": poisson.detach(), "contrastive": contrast.detach(),
                "velocity": vel_loss.detach(),
                "time_ratio": as_t(float(tmask.float().mean())),
                "unit_ratio": as_t(float(umask.sum() / unit_mask.sum().clamp(min=1)))}

    def velocity(self, counts: torch.Tensor, unit_mask: torch.Tensor, coords: Coords | None,
                 site_mask: torch.Tensor | None = None,
                 readin: torch.Tensor | None = None) -> torch.Tensor:
        """Per-bin velocity (B, T, n_axis) from the site-pooled tokens (causal in T)."""
        out = self.encode(counts, unit_mask, coords, site_mask, readin=readin)
        return self.velocity_head(out.pooled)

    def grow_readins(self, n_rows: int) -> None:
        """Give the per-session read-in and read-out ``n_rows`` rows (new rows: fresh init).

        Finetuning on a session pretraining never saw adds its rows this way; the config
        records the new count so a saved checkpoint rebuilds the same shapes.
        """
        if self.cfg.readin != "session" or n_rows <= self.cfg.n_readins:
            return
        self.encoder.embed.grow(n_rows)
        if self.encoder.mask_embed is not None:
            self.encoder.mask_embed.grow(n_rows)
        self.readout.grow(n_rows)
        self.cfg.n_readins = n_rows

    def grow_units(self, n_units: int) -> None:
        """Widen the unit slots to ``n_units`` (a session with a larger site than any before).

        Every read-in and read-out row gets the new slots (fresh weights); the old slots
        keep theirs, and in the sessions seen before the new slots are empty, so their
        outputs do not change. The config records the new count.
        """
        if n_units <= self.cfg.n_units:
            return
        self.encoder.embed.grow_inputs(n_units)
        if self.encoder.mask_embed is not None:
            self.encoder.mask_embed.grow_inputs(n_units)
        self.readout.grow_outputs(n_units)
        self.cfg.n_units = n_units

    def encoder_parameters(self) -> Iterator[nn.Parameter]:
        """All parameters of the encoder (the read-in included)."""
        return self.encoder.parameters()

    def readin_parameters(self) -> Iterator[nn.Parameter]:
        """The unit-slot read-in ``N -> d`` (trained even in 'frozen' finetuning).

        Slot i holds a different unit in every session, so a read-in learned elsewhere
        cannot know the target session's units: it is the session-specific part of the
        encoder (with ``readin: session`` the target session has rows of its own). The
        embedding of hidden entries is per row too (``mask_input: learned``).
        """
        yield from self.encoder.embed.parameters()
        if self.encoder.mask_embed is not None:
            yield from self.encoder.mask_embed.parameters()

    def core_parameters(self) -> Iterator[nn.Parameter]:
        """Encoder parameters except the read-in (frozen in 'frozen' finetuning)."""
        readin = {id(p) for p in self.readin_parameters()}
        return (p for p in self.encoder.parameters() if id(p) not in readin)

    def readout_parameters(self) -> Iterator[nn.Parameter]:
        """The per-session last layer of the reconstruction decoder (slots -> rates): with
        the read-in, what label-free adaptation learns for a new session."""
        return self.readout.parameters()

    def head_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the velocity head (always trained in finetuning)."""
        return self.velocity_head.parameters()

    def pretrain_head_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the reconstruction decoder and read-out (pretraining only)."""
        yield from self.decoder.parameters()
        yield from self.readout.parameters()

"""The RPNT model configuration: one dataclass, size presets and ablation switches."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from rpnt.data.batches import DataExtent
from rpnt.errors import RpntError
from rpnt.fields import check_fields, setting

POS_ENCODINGS = ("none", "sinusoidal", "learned", "rope_time", "mrope", "mrope_legacy")
ATTENTIONS = ("standard", "context")
CONTRASTIVE = ("none", "site_discrimination", "site_invariance")
READINS = ("shared", "session")
#: How each rotary band's frequencies are chosen (rpnt.model.rope.band_frequencies).
ROPE_FREQUENCIES = ("ranges", "bases")
CONTEXT_TOKENS = ("shared", "none")
MASK_INPUTS = ("learned", "zero")
#: Metadata coordinates MRoPE understands (besides the implicit bin index "time").
KNOWN_COORDS = ("subject", "date", "task", "site_x", "site_y", "site_z")
#: Coordinates that are one value per window (session metadata): each gets a context token.
META_COORDS = ("subject", "date", "task")
CATEGORICAL_COORDS = ("subject", "task")
SITE_COORDS = ("site_x", "site_y", "site_z")
#: Shortest rotary wavelength of a categorical id band: neighbouring ids a quarter turn apart.
CATEGORICAL_MIN_WAVELENGTH = 4.0
#: Shortest wavelength of the date band, in days: two weeks.
DATE_MIN_WAVELENGTH = 14.0
#: How far (days) beyond the dates a model was built on its date band must stay
#: order-preserving: ten years of deployment after (or before) the pretraining span. The
#: slowest date pair's wavelength is 2 x (span + horizon), so no two dates within the span
#: widened by the horizon are half a turn apart (docs/model.md, "Coordinates beyond the
#: pretraining span").
DATE_HORIZON = 3653.0
#: Shortest wavelength of the time band, in bins.
TIME_MIN_WAVELENGTH = 6.0
#: Wavelengths of a band when the data say nothing (a config never fitted to sessions,
#: e.g. in tests; single-site data for the site bands): (shortest, longest). Time's
#: longest is 2 x window (set in RPNTConfig.wavelength_range). Date: 2 x (the four years
#: 2013-2016 + DATE_HORIZON); ids: room for 8; sites: 50 um to 4 x a 3.84 mm Neuropixels
#: shank.
FALLBACK_WAVELENGTHS: dict[str, tuple[float, float]] = {
    "subject": (CATEGORICAL_MIN_WAVELENGTH, 16.0), "task": (CATEGORICAL_MIN_WAVELENGTH, 16.0),
    "date": (DATE_MIN_WAVELENGTH, 2.0 * (1461.0 + DATE_HORIZON)),
    **{c: (50.0, 16000.0) for c in SITE_COORDS},
}
#: Config keys a checkpoint saved before they existed rebuilds as: the released behaviour
#: it was trained with (RPNTConfig.from_saved).
SAVED_BEFORE = {"rope_frequencies": "bases", "context_tokens": "none", "mask_input": "zero"}


def _default_bases() -> dict[str, float]:
    # Rotary bases of the released code (rpnt-model.md): subject 100, date 1000, task 10;
    # multi-site x/y 5000. The bin index uses base 100, not the released 10000: with T=50
    # bins and the time band holding only part of a head's pairs (3 of 8 pairs at
    # head_dim 16), base 10000 leaves periods of 6, 136 and ~3000 bins - one useful
    # frequency inside a window. Base 100 gives periods 6, 29 and 136 bins
    # (measurement: docs/measurements.md "Measured training fixes").
    return {"time": 100.0, "subject": 100.0, "date": 1000.0, "task": 10.0,
            "site_x": 5000.0, "site_y": 5000.0, "site_z": 5000.0}


def _default_shares() -> dict[str, float]:
    # Relative share of each head's rotary pairs; normalised over the coordinates in use.
    # Time varies within every window, so it gets the largest share.
    return {"time": 4.0, "subject": 1.0, "date": 1.0, "task": 1.0,
            "site_x": 1.0, "site_y": 1.0, "site_z": 1.0}


def _default_scales() -> dict[str, float]:
    # Rule "bases" only. The released multi-site code multiplies site coordinates (um) by
    # 0.1 before rotation; dates (days since 2013-01-01) are scaled to [0, 1] over
    # 2013-2016, the released code's date coordinate.
    return {"site_x": 0.1, "site_y": 0.1, "site_z": 0.1, "date": 1.0 / 1461.0}


#: name -> (d_model, n_layers, n_spatial_layers, n_heads)
PRESETS: dict[str, tuple[int, int, int, int]] = {
    "tiny": (32, 2, 1, 2),
    "small": (256, 4, 2, 8),
    "medium": (768, 6, 2, 12),
    "large": (1024, 8, 2, 16),
}


@dataclass
class RPNTConfig:
    """Everything needed to rebuild an :class:`rpnt.model.RPNT` (JSON-serialisable).

    Inputs are windows of ``window`` bins of ``S`` sites with ``n_units`` unit slots per
    site (the caller zero-pads units and passes a unit mask; with ``readin: shared`` it
    subsamples a site with more than ``n_units`` units).
    """

    #: N unit slots per site token. readin shared: the slot limit (a site with more units
    #: is subsampled, the released code's 50). readin session: the least; :meth:`fitted`
    #: widens it to the largest site of the sessions, so no unit is dropped.
    n_units: int = setting(50, minimum=1)
    window: int = setting(50, minimum=1)  #: T bins per window (20 ms bins: 1 s)
    #: at least 16: the velocity head narrows d -> d/4 -> d/16
    d_model: int = setting(256, minimum=16)
    n_layers: int = setting(4, minimum=0)  #: causal temporal layers, applied per site
    n_spatial_layers: int = setting(2, minimum=0)  #: cross-site layers, per time bin
    n_heads: int = setting(8, minimum=1)  #: attention heads (d_model divisible by it)
    dropout: float = setting(0.1, minimum=0, maximum=1)  #: dropout of attention and MLP
    #: position encoding; mrope: rotary over time and coords
    pos_encoding: str = setting("mrope", enum=POS_ENCODINGS)
    #: temporal attention: "standard" or "context"
    attention: str = setting("context", enum=ATTENTIONS)
    kernel_size: int = setting(3, minimum=1)  #: k of the k x k context kernels (odd)
    #: width of the context summary MLP; 0 = d_model // 4
    context_dim: int = setting(0, minimum=0)
    #: MRoPE coordinates besides time
    coords: tuple[str, ...] = setting(("subject", "date", "task"),
                                      items={"enum": list(KNOWN_COORDS)})
    #: "ranges": every band's wavelengths span its coordinate's range
    #: (rope_wavelength_min/max); "bases": pair j of n rotates at rope_bases[c] ** (-j/n)
    #: after coord_scales (the released rule)
    rope_frequencies: str = setting("ranges", enum=ROPE_FREQUENCIES)
    #: rule "ranges": shortest / longest wavelength per coordinate in its own units (bins,
    #: days, ids, um); a coordinate missing here is set by :meth:`fitted` from the data
    #: (else FALLBACK_WAVELENGTHS)
    rope_wavelength_min: dict[str, float] = setting(default_factory=dict)
    #: rule ranges: longest wavelength per coordinate
    rope_wavelength_max: dict[str, float] = setting(default_factory=dict)
    #: rule bases: rotary base per coordinate
    rope_bases: dict[str, float] = setting(default_factory=_default_bases)
    #: relative share of each head's rotary pairs per coordinate
    rope_shares: dict[str, float] = setting(default_factory=_default_shares)
    #: rule bases: factor on each coordinate before rotation
    coord_scales: dict[str, float] = setting(default_factory=_default_scales)
    #: "shared": one learned token per metadata coordinate in coords, a causal prefix of
    #: every temporal sequence at that coordinate's value (data tokens sit at 0 on the
    #: metadata axes), so the metadata bands act; "none": the released code (they cancel)
    context_tokens: str = setting("shared", enum=CONTEXT_TOKENS)
    #: how a count hidden by the pretraining mask enters the encoder: "learned" (zeroed,
    #: plus a learned per-session embedding of the hidden-entry indicator) or "zero"
    #: (zeroed only, like silence: the released code)
    mask_input: str = setting("learned", enum=MASK_INPUTS)
    n_axis: int = setting(2, minimum=1)  #: velocity outputs
    mask_ratio_range: tuple[float, float] = setting((0.01, 0.99))  #: 0 < a <= b < 1
    #: ablation: same time and unit ratio every batch
    fixed_mask_ratio: float | None = setting(None, exclusive_minimum=0, exclusive_maximum=1)
    #: contrastive term of multi-site pretraining
    contrastive: str = setting("site_invariance", enum=CONTRASTIVE)
    contrastive_weight: float = setting(0.1, minimum=0)  #: weight of the contrastive term
    #: its softmax temperature
    contrastive_temperature: float = setting(0.1, exclusive_minimum=0)
    #: unit read-in / reconstruction read-out: "shared" (one Linear for every recording,
    #: as the released code) or "session" (one per site of each session; rpnt.model.readin)
    readin: str = setting("session", enum=READINS)
    #: rows of the per-session read-in (set from the vocabulary)
    n_readins: int = setting(1, minimum=1)

    def __post_init__(self) -> None:
        self.coords = tuple(self.coords)
        self.mask_ratio_range = tuple(float(x) for x in self.mask_ratio_range)
        # Partial dicts from a YAML config override the defaults key by key.
        self.rope_bases = {**_default_bases(), **dict(self.rope_bases)}
        self.rope_shares = {**_default_shares(), **dict(self.rope_shares)}
        self.coord_scales = {**_default_scales(), **dict(self.coord_scales)}
        self.validate()

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def ctx_dim(self) -> int:
        return self.context_dim or max(1, self.d_model // 4)

    def validate(self) -> None:
        """Raise :class:`RpntError` naming the offending ``model`` setting.

        Each field's own type, range and choices are declared with it
        (:func:`rpnt.fields.setting`); here are the checks that involve several fields.
        """

        def bad(msg: str) -> RpntError:
            return RpntError(f"model config: {msg}")

        check_fields(self, "model config: model")
        if self.readin == "shared" and self.n_readins != 1:
            raise bad(f"n_readins {self.n_readins} must be 1 for readin shared")
        if len(set(self.coords)) != len(self.coords):
            raise bad(f"coords {self.coords} has duplicates")
        if self.d_model % self.n_heads:
            raise bad(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.head_dim % 2:
            raise bad(f"head dimension {self.head_dim} must be even for rotary embeddings")
        if self.kernel_size % 2 == 0:
            raise bad(f"kernel_size {self.kernel_size} must be odd")
        lo, hi = self.mask_ratio_range
        if not 0.0 < lo <= hi < 1.0:
            raise bad(f"mask_ratio_range {self.mask_ratio_range} must satisfy 0 < a <= b < 1")
        if self.pos_encoding == "mrope_legacy" and not self.coords:
            raise bad("pos_encoding mrope_legacy needs at least one coordinate in coords")
        used = self.rotary_coords()
        for c in used:
            if self.rope_frequencies == "bases" and self.rope_bases.get(c, 0) <= 1.0:
                raise bad(f"rope_bases[{c!r}] must be > 1")
            if self.rope_shares.get(c, 0) <= 0:
                raise bad(f"rope_shares[{c!r}] must be > 0")
        for name in ("rope_wavelength_min", "rope_wavelength_max"):
            for c, v in getattr(self, name).items():
                if c not in ("time", *KNOWN_COORDS):
                    raise bad(f"{name} has unknown coordinate {c!r}; known: "
                              f"{('time', *KNOWN_COORDS)}")
                if not float(v) > 0:
                    raise bad(f"{name}[{c!r}] must be > 0, got {v!r}")
        for c in used:
            lo, hi = self.wavelength_range(c)
            if lo > hi:
                raise bad(f"rope_wavelength_min[{c!r}] {lo} exceeds rope_wavelength_max {hi}")
        if len(used) > self.head_dim // 2:
            raise bad(f"{len(used)} rotary coordinates need at least {len(used)} rotary pairs "
                      f"per head, but head_dim {self.head_dim} has {self.head_dim // 2}")

    def rotary_coords(self) -> tuple[str, ...]:
        """Coordinates that get a rotary band: ``("time", *coords)`` for mrope."""
        if self.pos_encoding == "mrope":
            return ("time", *self.coords)
        if self.pos_encoding == "rope_time":
            return ("time",)
        if self.pos_encoding == "mrope_legacy":
            return (self.coords[0],)
        return ()

    def wavelength_range(self, c: str) -> tuple[float, float]:
        """(shortest, longest) rotary wavelength of coordinate ``c`` under rule "ranges":
        the configured value, else the fallback (time: 6 bins .. 2 x window)."""
        lo, hi = (TIME_MIN_WAVELENGTH, 2.0 * self.window) if c == "time" else \
            FALLBACK_WAVELENGTHS[c]
        return (float(self.rope_wavelength_min.get(c, min(lo, hi))),
                float(self.rope_wavelength_max.get(c, hi)))

    def has_context_tokens(self) -> bool:
        """Whether the encoder prepends context tokens (a metadata coordinate is in use)."""
        return self.context_tokens == "shared" and any(c in META_COORDS for c in self.coords)

    def fitted(self, extent: DataExtent) -> RPNTConfig:
        """This config fitted to the sessions a model is built on (a copy).

        readin session: ``n_units`` widened to the largest site, so every unit has a slot.
        Rule "ranges": every rotary coordinate missing from ``rope_wavelength_min/max``
        gets its range, from the data where it depends on them (docs/model.md, MRoPE):

        - time: 6 bins .. 2 x window;
        - subject, task (categorical ids): 4 .. 2K, K = 2 x the ids known (at least 4), so
          ids met later at finetuning still land at distinct angles;
        - date (days): 14 .. 2 x (the span of the sessions' dates + DATE_HORIZON), so a
          date up to ten years outside the span still rotates in order (no aliasing);
        - site x / y / z (um): 2 x the smallest .. 4 x the largest distance between two
          sites of one session along that axis (no such pair: the fallback).

        The result records every range, so a checkpoint rebuilds the same frequencies.
        """
        changes: dict[str, Any] = {}
        if self.readin == "session" and extent.max_units > self.n_units:
            changes["n_units"] = int(extent.max_units)
        if self.rope_frequencies == "ranges":
            lo_d, hi_d = dict(self.rope_wavelength_min), dict(self.rope_wavelength_max)
            for c in self.rotary_coords():
                lo, hi = self.wavelength_range(c)
                if c in CATEGORICAL_COORDS:
                    n_ids = extent.n_subjects if c == "subject" else extent.n_tasks
                    hi = 2.0 * max(4, 2 * n_ids)
                elif c == "date" and extent.days is not None:
                    hi = 2.0 * (extent.days[1] - extent.days[0] + DATE_HORIZON)
                elif c in extent.spacing:
                    small, large = extent.spacing[c]
                    lo, hi = 2.0 * small, max(4.0 * large, 2.0 * small)
                lo_d.setdefault(c, min(lo, hi))
                hi_d.setdefault(c, hi)
            changes.update(rope_wavelength_min=lo_d, rope_wavelength_max=hi_d)
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_saved(cls, d: dict[str, Any]) -> RPNTConfig:
        """Rebuild a saved config; keys it predates (SAVED_BEFORE) get the behaviour the
        checkpoint was trained with."""
        return cls(**{**SAVED_BEFORE, **d})

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> RPNTConfig:
        """A size preset (tiny | small | medium | large) with field overrides."""
        if name not in PRESETS:
            raise RpntError(f"model config: preset {name!r} is not one of {tuple(PRESETS)}")
        d, layers, spatial, heads = PRESETS[name]
        base: dict[str, Any] = {"d_model": d, "n_layers": layers,
                                "n_spatial_layers": spatial, "n_heads": heads}
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise RpntError(f"model config: unknown keys {unknown}; known: {sorted(fields)}")
        base.update(overrides)
        return cls(**base)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict; ``RPNTConfig(**d)`` rebuilds the config."""
        d = dataclasses.asdict(self)
        d["coords"] = list(self.coords)
        d["mask_ratio_range"] = list(self.mask_ratio_range)
        return d

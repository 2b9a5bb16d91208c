"""Rotary position embeddings: multidimensional (MRoPE), time-only, and the legacy defect.

Each head's ``head_dim`` features form ``head_dim / 2`` rotary pairs (rotate-half layout:
pair ``i`` is features ``(i, i + head_dim/2)``). MRoPE splits the pairs into contiguous
sub-bands, one per coordinate (bin index, site x/y/z, date, subject, task), each with its
own share of pairs and its own frequencies, as in Qwen2-VL's M-RoPE. Pair ``j`` of the
band of coordinate ``c`` (``n_c`` pairs) rotates by ``pos_c * omega_j``, with
(:func:`band_frequencies`) either wavelengths that span the coordinate's range,
``2 pi / omega_j = lo * (hi / lo) ** (j / (n_c - 1))`` (one pair: ``hi``), or the
released rule ``omega_j = base_c ** (-j / n_c)``; so after rotation

    q(p) . k(p') = f(q, k, p - p')      for every coordinate separately,

i.e. attention depends on the *difference* of every coordinate. With one coordinate
(time) and all pairs this is plain 1-D RoPE.

``legacy`` reproduces the released code's defect: all pairs rotate with the frequencies of
the *first* metadata coordinate only (subject, or site x), which is constant within a
window, so the rotation cancels in q . k and position has no effect.
"""

from __future__ import annotations

import torch
from torch import nn


def band_sizes(shares: list[float], n_pairs: int) -> list[int]:
    """Split ``n_pairs`` rotary pairs in proportion to ``shares``; every band gets >= 1.

    Largest-remainder rounding, so the sizes sum to ``n_pairs`` exactly.
    """
    if len(shares) > n_pairs:
        raise ValueError(f"{len(shares)} bands need at least {len(shares)} pairs, have {n_pairs}")
    total = float(sum(shares))
    free = n_pairs - len(shares)  # one pair reserved per band
    raw = [s / total * free for s in shares]
    sizes = [int(r) for r in raw]
    order = sorted(range(len(shares)), key=lambda i: raw[i] - sizes[i], reverse=True)
    for i in order[: free - sum(sizes)]:
        sizes[i] += 1
    return [s + 1 for s in sizes]


def band_frequencies(n: int, base: float | None = None,
                     wavelengths: tuple[float, float] | None = None) -> torch.Tensor:
    """(n,) float64 angular frequencies (rad per coordinate unit) of one band of n pairs.

    ``wavelengths`` (lo, hi): geometric from wavelength ``lo`` (pair 0) to ``hi`` (last
    pair), so the band resolves steps of about lo / 2 and its slowest pair never wraps
    inside hi / 2; one pair gets ``hi``. Else ``base``: pair j at ``base ** (-j / n)``
    (the released rule; its pair 0 turns at 1 rad per unit whatever the base).
    """
    j = torch.arange(n, dtype=torch.float64)
    if wavelengths is None:
        return float(base) ** (-j / n)
    lo, hi = (float(v) for v in wavelengths)
    lam = torch.full((n,), hi, dtype=torch.float64) if n == 1 else lo * (hi / lo) ** (j / (n - 1))
    return 2 * torch.pi / lam


class RotaryEmbedding(nn.Module):
    """Rotary angles from multi-coordinate positions (lucidrains-style small module).

    Args:
        head_dim: features per head (even).
        coords: coordinate names, in the order of the last axis of ``positions``.
        bases: rotary base per coordinate (used without ``wavelengths``).
        shares: relative share of the rotary pairs per coordinate.
        mode: ``"mrope"`` (one band per coordinate) or ``"legacy"`` (every pair uses the
            frequencies of ``coords[0]`` only; the released code's behaviour).
        wavelengths: (shortest, longest) wavelength per coordinate, or None for ``bases``
            (:func:`band_frequencies`).
    """

    def __init__(self, head_dim: int, coords: tuple[str, ...], bases: dict[str, float],
                 shares: dict[str, float], mode: str = "mrope",
                 wavelengths: dict[str, tuple[float, float]] | None = None):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"head_dim must be even, got {head_dim}")
        if mode not in ("mrope", "legacy"):
            raise ValueError(f"unknown rotary mode {mode!r}")
        self.coords = tuple(coords)
        self.mode = mode
        n_pairs = head_dim // 2
        if mode == "legacy":
            sizes = [n_pairs] + [0] * (len(coords) - 1)
        else:
            sizes = band_sizes([float(shares[c]) for c in coords], n_pairs)
        inv_freq = torch.zeros(n_pairs, dtype=torch.float64)
        owner = torch.zeros(n_pairs, dtype=torch.long)  # which coordinate drives each pair
        start = 0
        for ci, (c, n) in enumerate(zip(coords, sizes, strict=True)):
            if n:
                inv_freq[start:start + n] = (
                    band_frequencies(n, wavelengths=wavelengths[c]) if wavelengths
                    else band_frequencies(n, base=bases[c]))
            owner[start:start + n] = ci
            start += n
        self.band_sizes = sizes
        # Constants of the construction: plain attributes (not buffers), so they stay float64
        # whatever dtype the model is cast to, and are never saved in checkpoints.
        self.inv_freq = inv_freq
        self.owner = owner

    def angles(self, positions: torch.Tensor) -> torch.Tensor:
        """Rotation angles.

        Args:
            positions: (..., n_coords) float, last axis in the order of ``self.coords``.
        Returns:
            (..., head_dim // 2) float64 angles (computed in double precision, so large
            positions keep their resolution; :meth:`rotate` casts cos/sin to x's dtype).
        """
        if positions.shape[-1] != len(self.coords):
            raise ValueError(f"positions have {positions.shape[-1]} coordinates, "
                             f"expected {len(self.coords)} {self.coords}")
        # Gather each pair's own coordinate, then scale by that pair's frequency.
        dev = positions.device
        pos = positions.double().index_select(-1, self.owner.to(dev))  # (..., n_pairs)
        return pos * self.inv_freq.to(dev)

    @staticmethod
    def rotate(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        """Rotate ``x`` (..., L, head_dim) by ``angles`` (..., L, head_dim // 2).

        ``angles`` broadcasts over leading axes (e.g. (B, 1, L, half) for (B, H, L, d)).
        """
        half = x.shape[-1] // 2
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        x1, x2 = x[..., :half], x[..., half:]
        return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


def sinusoidal_table(length: int, dim: int, base: float = 10000.0) -> torch.Tensor:
    """(length, dim) fixed sinusoidal position table (Vaswani et al.), sin | cos halves."""
    half = dim // 2
    inv = base ** (-torch.arange(half, dtype=torch.float64) / max(half, 1))
    ang = torch.arange(length, dtype=torch.float64)[:, None] * inv[None, :]
    table = torch.zeros(length, dim, dtype=torch.float64)
    table[:, :half] = ang.sin()
    table[:, half:2 * half] = ang.cos()
    return table.float()

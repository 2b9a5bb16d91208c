"""RPNT, one bin at a time: a key/value cache over a bounded attention span.

The function (``span`` = T bins, the model's window unless chosen; C context tokens; the
bins fed since ``reset`` are numbered 0, 1, ...):

* every temporal layer is causal, and bin i attends to the C context tokens and to the
  bins of its *view* ``[start_i, i]``, ``start_i = max(0, i - T + 1)``, whose states are
  the stream's own (computed when each bin arrived): a sliding-window transformer;
* the view of bin i is laid out as a window of the offline model is: the context tokens,
  then the view's bins, the context tokens at time ``start_i - 1`` (the window model puts
  them at -1, one bin before the window's first bin), bin b at time b; rotary attention
  depends on time differences only;
* context attention convolves its k x k kernel over the score rows of bins i, i-1, ...,
  i-k+1 restricted to the columns of that view, exactly as over the last row of a window's
  score map (future scores zeroed, zero outside the view); the kernel generator pools over
  the view;
* the spatial layers, final norm and velocity head act per bin, as offline.

For bins 0 .. T-1 this is exactly the window model on the window starting at ``reset``.
Later, a bin's states in layer >= 1 depend on views that reach further back than T bins,
so the stream is not the same function as recomputing each window (``mode="recompute"``
below is that function, at O(T^2 d) per bin); :func:`RPNTStream.offline` computes the
stream's function vectorised (what ``rpnt evaluate --stream`` scores).

Per bin and layer the stream computes one token's projections and MLP (O(d^2)), its
scores against the view's cached keys (O(T d)) and the k score rows the convolution needs
(k-1 of them from cached *queries*: a cached score row would have to be re-laid out on the
new view every bin, since its context columns move with the view; recomputing k rows of T
dot products costs less than the copy), so O(d^2 + k T d) per bin, not O(T^2 d).

Cache layout, per layer (slots along the sequence axis): ``P = T - 1`` zero slots, the C
context tokens, then the bins. The view of bin i is the C + T slots ending at its slot;
before the view has T bins its left part is the zero slots (masked out of the softmax);
afterwards the context tokens are re-written, every bin, into the C slots just before the
view's first bin (their keys rotated to the view's time). When the buffer is full its last
C + T - 1 slots are copied to its front.

Inference runs under ``torch.no_grad``, not ``inference_mode``: the window model's fused
context attention keeps scratch buffers between calls, and a buffer made in inference
mode cannot be written outside it later (by training or offline scoring).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rpnt.data.batches import eval_unit_choice
from rpnt.data.session import SessionData
from rpnt.decoders.base import Decoder
from rpnt.errors import RpntError
from rpnt.model.rope import RotaryEmbedding
from rpnt.online.base import StreamingDecoder

#: Queries per chunk in the offline form (memory: chunk x (C + T) x d per site).
CHUNK = 256
#: Slots of bins a cache holds beyond one view before it is compacted.
SPARE_SLOTS = 256


def span_attention(q_rows: torch.Tensor, k_view: torch.Tensor, v_view: torch.Tensor,
                   kern: torch.Tensor | None, neg: torch.Tensor, ksize: int) -> torch.Tensor:
    """Attention of M queries over their views (the one kernel of stream and offline).

    q_rows (M, H, k, dh): row a is the query of bin i - a (a = 0: the query itself; zeros
    outside the sequence); k_view, v_view (M, H, V, dh): keys and values of the view's
    columns, the query's own column last; kern (M, H, k*k) context kernels (None:
    standard attention); neg (M, V): 0, or -inf on columns outside the view.
    Returns (M, H, dh).
    """
    m, h, v, dh = k_view.shape
    scale = 1.0 / math.sqrt(dh)
    if kern is None:
        s = (q_rows[:, :, :1] @ k_view.transpose(-1, -2))[:, :, 0] * scale  # (M, H, V)
    else:
        s = q_rows @ k_view.transpose(-1, -2)  # (M, H, k, V)
        # Row a (bin i - a) sits at column V-1-a: its later columns are future scores.
        s = s * _past(ksize, v, s)
        # C[u] = sum_{a,b} K[a*k+b] S[a, u+b-c]: a grouped 1-D correlation, one group per
        # (query, head), the k rows as its input channels, zero padding c.
        w = (kern * scale).reshape(m * h, ksize, ksize)
        s = F.conv1d(s.reshape(1, m * h * ksize, v), w, padding=ksize // 2,
                     groups=m * h).view(m, h, v)
    p = torch.softmax(s + neg[:, None, :], dim=-1)
    return (p[:, :, None, :] @ v_view)[:, :, 0]


def _flat(z: torch.Tensor) -> torch.Tensor:
    """(S, H, m, ...) -> (S * m, H, ...): sites and queries as one batch axis."""
    return z.transpose(1, 2).reshape(-1, *z.shape[1:2], *z.shape[3:])


_PAST: dict[tuple, torch.Tensor] = {}


def _past(ksize: int, v: int, like: torch.Tensor) -> torch.Tensor:
    """(k, V) 1 where column u <= V-1-a (row a's past and present), else 0 (cached)."""
    key = (ksize, v, like.dtype, like.device)
    if key not in _PAST:
        u = torch.arange(v, device=like.device)
        a = torch.arange(ksize, device=like.device)
        _PAST[key] = (u[None, :] <= v - 1 - a[:, None]).to(like.dtype)
    return _PAST[key]


class RPNTStream(StreamingDecoder):
    """The RPNT stream (module docstring). ``span``: bins in a view (default: window)."""

    kind = "rpnt"

    def __init__(self, decoder: Decoder, span: int | None = None, **_: Any):
        super().__init__(decoder)
        cfg = decoder.config
        if cfg.pos_encoding in ("sinusoidal", "learned"):
            raise RpntError(f"RPNT stream: pos_encoding {cfg.pos_encoding!r} adds a position "
                            "per window slot, which a sliding stream has no fixed value for; "
                            "stream a model with rotary (mrope, rope_time) or no positions")
        self.cfg = cfg
        self.model = decoder.model.eval()
        self.enc = self.model.encoder
        self.span = int(span or cfg.window)
        self.ksize = int(cfg.kernel_size)
        self.context = cfg.attention == "context"
        if self.context and self.span < self.ksize:
            raise RpntError(f"RPNT stream: span {self.span} is shorter than the context "
                            f"kernel ({self.ksize}); use a span >= kernel_size")
        self.n_ctx = len(self.enc.meta)
        self.heads, self.dh = cfg.n_heads, cfg.head_dim
        self.n_axis = cfg.n_axis

    # -- reset: metadata, unit slots, context-token states ------------------------------------
    @torch.no_grad()
    def _reset(self, session: SessionData) -> None:
        dec, enc = self.decoder, self.enc
        sw = dec.windows(session, self.span)
        units = eval_unit_choice(sw, 1, seed=int(dec.hparams.get("eval_seed", 0)))[0]
        self.slots = np.where(units < 0, 0, units)  # (S, N) unit index per slot
        self.real = torch.from_numpy(units >= 0)  # (S, N)
        self.n_site = units.shape[0]
        self.readin = torch.from_numpy(sw.readin)[None]  # (1, S)
        coords = {k: torch.from_numpy(np.asarray(v, np.float32))[None]
                  for k, v in sw.coords.items()}
        s, c = self.n_site, self.n_ctx
        tmpl = enc.positions(coords, 1, s, 1, torch.device("cpu"))  # (1, S, C+1, n_coord)
        if tmpl is not None:
            self.time_axis = enc.rotary.coords.index("time")
            self.bin_pos = tmpl[0, :, c]  # (S, n_coord) float64, time set per bin
            self.ctx_pos = tmpl[0, :, :c]  # (S, C, n_coord), time -1
        # Context tokens see only each other: their states are constants of the session.
        self.layers: list[dict[str, torch.Tensor]] = []
        xc = self.enc.ctx_tokens.expand(s, -1, -1) if c else None  # (S, C, d)
        ang_c = self._angles(self.ctx_pos)[:, None] if (c and tmpl is not None) else None
        for blk in enc.temporal:
            lay: dict[str, torch.Tensor] = {}
            if c:
                hc = blk.norm1(xc)
                q, k, v = self._qkv(blk, hc)  # (S, H, C, dh) each
                lay["qc"] = q if ang_c is None else RotaryEmbedding.rotate(q, ang_c)
                lay["kc"], lay["vc"] = k, v  # keys rotated per view
                if self.context:
                    lay["gc"] = self._pool_inputs(blk, hc)  # (S, C, 1 + ctx)
                xc, _ = blk(xc, None if ang_c is None else ang_c[:, 0])
            self.layers.append(lay)
        self._init_cache()

    def _qkv(self, blk: Any, h: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """h (S, L, d) normed -> unrotated q, k, v (S, H, L, dh)."""
        s, n, _ = h.shape
        qkv = blk.attn.qkv(h).view(s, n, 3, self.heads, self.dh)
        return qkv.permute(2, 0, 3, 1, 4).unbind(0)

    def _pool_inputs(self, blk: Any, h: torch.Tensor) -> torch.Tensor:
        """The kernel generator's per-token inputs: (S, L, 1 + ctx) [pool logit, summary]."""
        gen = blk.attn.kernel_gen
        return torch.cat([gen.pool(h), gen.summary(h)], dim=-1)

    def _angles(self, pos: torch.Tensor | None) -> torch.Tensor | None:
        return None if pos is None or self.enc.rotary is None else self.enc.rotary.angles(pos)

    def _with_time(self, pos: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """A copy of positions ``pos`` (..., n_coord) with the time axis set to ``times``
        (broadcast to pos[..., 0])."""
        out = pos.clone()
        out[..., self.time_axis] = times.to(out.dtype)
        return out

    def _init_cache(self) -> None:
        s, h, dh, c, t = self.n_site, self.heads, self.dh, self.n_ctx, self.span
        self.pad = t - 1
        self.cap = self.pad + c + 2 * (c + t) + SPARE_SLOTS
        self.cache = []
        for lay in self.layers:
            buf = {n: torch.zeros(s, h, self.cap, dh) for n in ("q", "k", "v")}
            if self.context:
                buf["g"] = torch.zeros(s, self.cap, 1 + self.cfg.ctx_dim)
            if c:
                sl = slice(self.pad, self.pad + c)
                buf["q"][:, :, sl] = lay["qc"]
                buf["k"][:, :, sl] = self._ctx_keys(lay, -1)
                buf["v"][:, :, sl] = lay["vc"]
                if self.context:
                    buf["g"][:, sl] = lay["gc"]
            self.cache.append(buf)
        self.slot = self.pad + c - 1  # slot of the last bin written
        # neg[w - 1]: the softmax mask of a view holding w bins (w <= T)
        u = torch.arange(c + t)
        npad = t - torch.arange(1, t + 1)  # (T,)
        self.neg = torch.where(u[None, :] < npad[:, None], float("-inf"), 0.0)

    def _ctx_keys(self, lay: dict[str, torch.Tensor], time: int) -> torch.Tensor:
        """Context keys (S, H, C, dh) rotated as seen from a view whose tokens sit at ``time``."""
        if self.enc.rotary is None:
            return lay["kc"]
        pos = self._with_time(self.ctx_pos, torch.tensor(float(time)))
        return RotaryEmbedding.rotate(lay["kc"], self._angles(pos)[:, None])

    # -- one bin -----------------------------------------------------------------------------
    def _embed(self, counts: torch.Tensor) -> torch.Tensor:
        """counts (n, n_unit) -> token embeddings (S, n, d)."""
        c = counts[:, torch.from_numpy(self.slots)]  # (n, S, N)
        c = torch.where(self.real, c, 0.0).transpose(0, 1)[None]  # (1, S, n, N)
        return self.enc.embed(c, self.readin)[0]

    def _compact(self) -> None:
        keep = self.n_ctx + self.span - 1
        for buf in self.cache:
            for name, b in buf.items():
                if name == "g":
                    b[:, :keep] = b[:, self.cap - keep:].clone()
                else:
                    b[:, :, :keep] = b[:, :, self.cap - keep:].clone()
        self.slot = keep - 1

    @torch.no_grad()
    def _step(self, counts: np.ndarray, want: bool) -> np.ndarray | None:
        i, t, c, k = self.t, self.span, self.n_ctx, self.ksize
        if self.slot + 1 == self.cap:
            self._compact()
        self.slot += 1
        slot = self.slot
        lo = slot - (c + t) + 1  # first slot of the view
        x = self._embed(torch.from_numpy(counts)[None])  # (S, 1, d)
        ang = None
        if self.enc.rotary is not None:
            pos = self._with_time(self.bin_pos, torch.tensor(float(i)))  # (S, n_coord)
            ang = self._angles(pos)[:, None, None]  # (S, 1, 1, half)
        start = max(0, i - t + 1)
        neg = self.neg[min(i, t - 1)][None].expand(self.n_site, -1)  # (S, V)
        for blk, lay, buf in zip(self.enc.temporal, self.layers, self.cache, strict=True):
            h = blk.norm1(x)
            q, kk, v = self._qkv(blk, h)  # (S, H, 1, dh)
            if ang is not None:
                q, kk = RotaryEmbedding.rotate(q, ang), RotaryEmbedding.rotate(kk, ang)
            buf["q"][:, :, slot] = q[:, :, 0]
            buf["k"][:, :, slot] = kk[:, :, 0]
            buf["v"][:, :, slot] = v[:, :, 0]
            if c and start > 0:  # the context tokens move to just before the view's bins
                sl = slice(lo, lo + c)
                buf["k"][:, :, sl] = self._ctx_keys(lay, start - 1)
                buf["v"][:, :, sl] = lay["vc"]
                if self.context:
                    buf["g"][:, sl] = lay["gc"]
            kern = None
            if self.context:
                buf["g"][:, slot] = self._pool_inputs(blk, h)[:, 0]
                kern = self._kernels(blk, buf["g"][:, lo:slot + 1], neg)
            q_rows = buf["q"][:, :, slot - k + 1:slot + 1].flip(2) if self.context else q
            a = span_attention(q_rows, buf["k"][:, :, lo:slot + 1], buf["v"][:, :, lo:slot + 1],
                               kern, neg, k)  # (S, H, dh)
            x = x + blk.attn.out(a.reshape(self.n_site, 1, -1))
            x = x + blk.mlp(blk.norm2(x))
        if not want:
            return None
        return self._readout(x, ang)[0]

    def _kernels(self, blk: Any, g_view: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        """g_view (M, V, 1 + ctx), neg (M, V) -> context kernels (M, H, k*k)."""
        gen = blk.attn.kernel_gen
        pool = torch.softmax(g_view[..., 0] + neg, dim=-1)  # (M, V)
        summ = (pool[:, None, :] @ g_view[..., 1:])[:, 0]  # (M, ctx)
        return gen.to_kernel(summ).view(-1, self.heads, self.ksize ** 2).softmax(-1)

    def _readout(self, x: torch.Tensor, ang: torch.Tensor | None) -> np.ndarray:
        """x (S, n, d) after the temporal layers, ang (S, 1, n, half) -> velocity (n, A)."""
        if self.enc.spatial:
            xs = x.transpose(0, 1)  # (n, S, d)
            as_ = None if ang is None else ang[:, 0].transpose(0, 1)
            for blk in self.enc.spatial:
                xs, _ = blk(xs, as_)
            x = xs.transpose(0, 1)
        pooled = self.enc.norm(x).mean(dim=0)  # (n, d)
        y = self.model.velocity_head(pooled) * self.decoder.vel_std + self.decoder.vel_mean
        return y.float().numpy()

    # -- the same function, vectorised ------------------------------------------------------
    @torch.no_grad()
    def offline(self, session: SessionData, counts: np.ndarray) -> np.ndarray:
        self.reset(session)
        t, c, k, heads, dh = self.span, self.n_ctx, self.ksize, self.heads, self.dh
        counts = torch.from_numpy(np.asarray(counts, np.float32))
        n, s = counts.shape[0], self.n_site
        x = self._embed(counts)  # (S, n, d)
        ang = None
        if self.enc.rotary is not None:
            pos = self._with_time(self.bin_pos[:, None].expand(s, n, -1),
                                  torch.arange(n, dtype=torch.float64))  # (S, n, n_coord)
            ang = self._angles(pos)[:, None]  # (S, 1, n, half)
        # Per query i: its view's layout (module docstring), as indices into
        # [zero, context tokens, bins].
        i = torch.arange(n)
        w = torch.clamp(i, max=t - 1) + 1  # bins in the view
        npad = t - w
        start = i - w + 1
        u = torch.arange(c + t)
        bin_idx = 1 + c + start[:, None] + (u[None, :] - npad[:, None] - c)
        ctx_idx = 1 + (u[None, :] - npad[:, None])
        idx = torch.where(u[None, :] < npad[:, None], 0,
                          torch.where(u[None, :] < (npad + c)[:, None], ctx_idx, bin_idx))
        neg = torch.where(u[None, :] < npad[:, None], float("-inf"), 0.0)  # (n, V)
        rows = (1 + c + i[:, None] - torch.arange(k)[None, :]).clamp(min=0)  # (n, k)
        ctx_slot = (npad[:, None] + torch.arange(c)[None, :])  # (n, C)
        zero = torch.zeros(s, heads, 1, dh)
        for blk, lay in zip(self.enc.temporal, self.layers, strict=True):
            h = blk.norm1(x)
            q, kk, v = self._qkv(blk, h)  # (S, H, n, dh)
            if ang is not None:
                q, kk = RotaryEmbedding.rotate(q, ang), RotaryEmbedding.rotate(kk, ang)
            qc = lay.get("qc", zero[:, :, :0])
            vc = lay.get("vc", zero[:, :, :0])
            e_q = torch.cat([zero, qc, q], dim=2)
            e_k = torch.cat([zero, torch.zeros_like(vc), kk], dim=2)
            e_v = torch.cat([zero, vc, v], dim=2)
            if self.context:
                g = self._pool_inputs(blk, h)  # (S, n, 1 + ctx)
                e_g = torch.cat([torch.zeros_like(g[:, :1]), lay.get("gc", g[:, :0]), g], 1)
            out = []
            for a0 in range(0, n, CHUNK):
                sl = slice(a0, min(n, a0 + CHUNK))
                m = sl.stop - sl.start
                kv = e_k[:, :, idx[sl]]  # (S, H, m, V, dh)
                if c:
                    kctx = self._ctx_keys_at(lay, start[sl] - 1)  # (S, H, m, C, dh)
                    kv.scatter_(3, ctx_slot[sl][None, None, :, :, None].expand_as(kctx), kctx)
                nm = neg[sl].repeat(s, 1)  # (S*m, V)
                kern = None
                if self.context:
                    kern = self._kernels(blk, e_g[:, idx[sl]].reshape(s * m, c + t, -1), nm)
                q_rows = e_q[:, :, rows[sl]] if self.context else q[:, :, sl, None]
                a = span_attention(_flat(q_rows), _flat(kv), _flat(e_v[:, :, idx[sl]]), kern,
                                   nm, k)
                out.append(a.reshape(s, m, heads * dh))
            x = x + blk.attn.out(torch.cat(out, dim=1))
            x = x + blk.mlp(blk.norm2(x))
        return self._readout(x, ang)

    def _ctx_keys_at(self, lay: dict[str, torch.Tensor], times: torch.Tensor) -> torch.Tensor:
        """Context keys (S, H, m, C, dh) rotated for views whose tokens sit at ``times`` (m,)."""
        kc = lay["kc"][:, :, None]  # (S, H, 1, C, dh)
        if self.enc.rotary is None:
            return kc.expand(-1, -1, times.shape[0], -1, -1).clone()
        s, m = self.n_site, times.shape[0]
        pos = self.ctx_pos[:, None].expand(s, m, *self.ctx_pos.shape[1:])
        pos = self._with_time(pos, times[None, :, None].expand(s, m, self.n_ctx))
        return RotaryEmbedding.rotate(kc, self._angles(pos)[:, None])


class RPNTWindowStream(RPNTStream):
    """``mode="recompute"``: every bin re-runs the window model on the last ``span`` bins
    (shorter right after ``reset``) and returns its last row: the offline window model
    exactly, at O(T^2 d) per bin (the reference of ``rpnt bench stream``)."""

    def _init_cache(self) -> None:
        self.ring = torch.zeros(self.span, self.n_site, self.cfg.n_units)

    @torch.no_grad()
    def _step(self, counts: np.ndarray, want: bool) -> np.ndarray | None:
        c = torch.from_numpy(counts)[torch.from_numpy(self.slots)]  # (S, N)
        self.ring[self.t % self.span] = torch.where(self.real, c, 0.0)
        if not want:
            return None
        w = min(self.t + 1, self.span)
        order = torch.from_numpy((self.t - w + 1 + np.arange(w)) % self.span)
        return self._window(self.ring[order].transpose(0, 1)[None])[0, -1]

    def _window(self, win: torch.Tensor) -> np.ndarray:
        """win (B, S, w, N) slot counts -> velocity (B, w, A) of the window model."""
        b = win.shape[0]
        coords = self._coords
        pred = self.model.velocity(win, self.real[None].expand(b, -1, -1),
                                   {k: v.expand(b, -1) for k, v in coords.items()},
                                   torch.ones(b, self.n_site, dtype=torch.bool),
                                   readin=self.readin.expand(b, -1))
        return (pred * self.decoder.vel_std + self.decoder.vel_mean).float().numpy()

    @torch.no_grad()
    def _reset(self, session: SessionData) -> None:
        sw = self.decoder.windows(session, self.span)
        units = eval_unit_choice(sw, 1, seed=int(self.decoder.hparams.get("eval_seed", 0)))[0]
        self.slots = np.where(units < 0, 0, units)
        self.real = torch.from_numpy(units >= 0)
        self.n_site = units.shape[0]
        self.readin = torch.from_numpy(sw.readin)[None]
        self._coords = {k: torch.from_numpy(np.asarray(v, np.float32))[None]
                        for k, v in sw.coords.items()}
        self._init_cache()

    @torch.no_grad()
    def offline(self, session: SessionData, counts: np.ndarray) -> np.ndarray:
        self.reset(session)
        c = torch.from_numpy(np.asarray(counts, np.float32))[:, torch.from_numpy(self.slots)]
        c = torch.where(self.real, c, 0.0).transpose(0, 1)  # (S, n, N)
        n, t = c.shape[1], self.span
        out = [self._window(c[None, :, :min(n, t)])[0]]
        ends = np.arange(t, n)
        for lo in range(0, ends.size, CHUNK):
            idx = torch.from_numpy(ends[lo:lo + CHUNK, None] - t + 1 + np.arange(t)[None])
            out.append(self._window(c[:, idx].permute(1, 0, 2, 3))[:, -1])
        return np.concatenate(out)

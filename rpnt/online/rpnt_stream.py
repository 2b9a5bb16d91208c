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
so the stream is not the same function as recomputing each window
(:mod:`rpnt.online.rpnt_window` is that function, at O(T^2 d) per bin);
:meth:`RPNTStream.offline` computes the stream's function vectorised (what
``rpnt evaluate --stream`` scores). Both run the arithmetic of :mod:`rpnt.online.rpnt_ops`.

Per bin and layer the stream computes one token's projections and MLP (O(d^2)), its
scores against the view's cached keys (O(T d)) and the k score rows the convolution needs
(k-1 of them from cached *queries*: a cached score row would have to be re-laid out on the
new view every bin, since its context columns move with the view; recomputing k rows of T
dot products costs less than the copy), so O(d^2 + k T d) per bin, not O(T^2 d).

Cache layout (one tensor per kind for all layers; slots along the sequence axis):
``T - 1 + c`` zero slots (c = k // 2: the convolution reads c columns either side of a
view, masked), the C context tokens, then the bins. The view of bin i is the C + T slots
ending at its slot; before the view has T bins its left part is the zero slots (masked out
of the softmax); afterwards the context tokens are re-written, every bin and for every
layer in one copy, into the C slots just before the view's first bin (their keys rotated
to the view's time). When the buffer is full its last C + T - 1 + c slots are copied to
its front. Rotary cos / sin come from tables computed per 512 bins.

Reset runs under ``torch.no_grad``, not ``inference_mode``: it runs the window model's
blocks on the context tokens, whose fused context attention keeps scratch buffers between
calls, and a buffer made in inference mode cannot be written outside it later (by training
or offline scoring). A step touches only the stream's own tensors: ``inference_mode``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rpnt.data.batches import eval_unit_choice
from rpnt.data.session import SessionData
from rpnt.decoders.base import Decoder
from rpnt.errors import RpntError
from rpnt.online import rpnt_ops as ops
from rpnt.online.base import StreamingDecoder

#: Queries per chunk in the offline form (memory: chunk x (C + T) x d per site).
CHUNK = 256
#: Slots of bins a cache holds beyond one view before it is compacted.
SPARE_SLOTS = 256
#: Bins per computed chunk of rotary tables.
TABLE_BINS = 512

Tab = tuple[torch.Tensor, torch.Tensor] | None


def _flat(z: torch.Tensor) -> torch.Tensor:
    """(S, H, m, ...) -> (S * m, H, ...): sites and queries as one batch axis."""
    return z.transpose(1, 2).reshape(-1, *z.shape[1:2], *z.shape[3:])


def _rows(tab: Tab, sl: Any) -> Tab:
    return None if tab is None else (tab[0][:, sl], tab[1][:, sl])


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
        self.cpad = self.ksize // 2 if self.context else 0
        self.n_ctx = len(self.enc.meta)
        self.heads, self.dh = cfg.n_heads, cfg.head_dim
        self.n_axis = cfg.n_axis

    # -- reset: operands, metadata, unit slots, context-token states --------------------------
    @torch.no_grad()
    def _reset(self, session: SessionData) -> None:
        dec, enc, h = self.decoder, self.enc, self.heads
        sw = dec.windows(session, self.span)
        units = eval_unit_choice(sw, 1, seed=int(dec.hparams.get("eval_seed", 0)))[0]
        s, c = units.shape[0], self.n_ctx
        self.n_site = s
        # Read-in as one (S, n_unit, d) map of the session's units (empty slots: no row).
        rows = sw.readin if enc.embed.n_rows > 1 else np.zeros(s, np.int64)
        w, b = enc.embed.weight.detach(), enc.embed.bias.detach()
        self.emb_w = torch.zeros(s, session.n_unit, w.shape[2])
        for j in range(s):
            real = np.flatnonzero(units[j] >= 0)
            self.emb_w[j].index_add_(0, torch.from_numpy(units[j][real]),
                                     w[int(rows[j])][torch.from_numpy(real)])
        self.emb_b = b[torch.from_numpy(np.asarray(rows, np.int64))][:, None].clone()
        self.tblocks = [ops.prepare_block(blk, h) for blk in enc.temporal]
        self.sblocks = [ops.prepare_block(blk, h) for blk in enc.spatial]
        self.final = ops.ln_params(enc.norm)
        head = [ops.linear_params(m) for m in self.model.velocity_head
                if isinstance(m, torch.nn.Linear)]
        std, mean = dec.vel_std.detach(), dec.vel_mean.detach()
        head[-1] = ((head[-1][0] * std).contiguous(), head[-1][1] * std + mean)
        self.head = head
        coords = {k: torch.from_numpy(np.asarray(v, np.float32))[None]
                  for k, v in sw.coords.items()}
        tmpl = enc.positions(coords, 1, s, 1, torch.device("cpu"))  # (1, S, C+1, n_coord)
        self.rotary = enc.rotary
        if tmpl is not None:
            # mrope_legacy rotates by metadata only: no time axis to move
            coords_r = enc.rotary.coords
            self.time_axis = coords_r.index("time") if "time" in coords_r else None
            self.bin_pos = tmpl[0, :, c]  # (S, n_coord) float64, time set per bin
            self.ctx_pos = tmpl[0, :, :c]  # (S, C, n_coord), time -1
        self._tabs: dict[str, tuple[int, Tab]] = {}
        # Context tokens see only each other: their states are constants of the session.
        lay: dict[str, list[torch.Tensor]] = {"qc": [], "kc": [], "vc": [], "gc": []}
        if c:
            xc = enc.ctx_tokens.detach().expand(s, -1, -1)  # (S, C, d)
            tab_c = self._ctx_tab(torch.tensor([-1.0]))
            tab_c = None if tab_c is None else (tab_c[0][:, 0], tab_c[1][:, 0])
            ang_c = (None if tmpl is None else
                     enc.rotary.angles(self.ctx_pos))  # (S, C, half), the window model's
            for p, blk in zip(self.tblocks, enc.temporal, strict=True):
                qk, v, g = ops.project(p, ops.layer_norm(xc, p.ln1).reshape(s * c, -1), None)
                qk = qk.view(s, c, 2, h, -1).permute(2, 0, 3, 1, 4)  # (2, S, H, C, dh)
                lay["qc"].append(ops.rotate(qk[0], self._heads(tab_c)))
                lay["kc"].append(qk[1])  # rotated per view
                lay["vc"].append(v.view(s, c, h, -1).transpose(1, 2))
                if g is not None:
                    lay["gc"].append(g.view(s, c, -1))
                xc, _ = blk(xc, ang_c)
        self.ctx = {k: torch.stack(v) for k, v in lay.items() if v}  # (L, S, H, C, dh) ...
        self._init_cache()

    @staticmethod
    def _heads(tab: Tab) -> Tab:
        """Tables (S, L, 2, half) -> (S, 1, L, 2, half), broadcast over heads."""
        return None if tab is None else (tab[0][:, None], tab[1][:, None])

    def _positions(self, pos: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        out = pos.clone()
        if self.time_axis is not None:
            out[..., self.time_axis] = times.to(out.dtype)
        return out

    def _bin_tab(self, times: torch.Tensor) -> Tab:
        """Rotary tables (S, n, 2, half) of the bins at ``times`` (n,)."""
        if self.rotary is None:
            return None
        s, n = self.n_site, times.shape[0]
        pos = self._positions(self.bin_pos[:, None].expand(s, n, -1), times[None, :])
        return ops.rotary_tables(self.rotary, pos)

    def _ctx_tab(self, times: torch.Tensor) -> Tab:
        """Rotary tables (S, m, C, 2, half) of the context tokens of views at ``times``."""
        if self.rotary is None:
            return None
        s, m = self.n_site, times.shape[0]
        pos = self.ctx_pos[:, None].expand(s, m, *self.ctx_pos.shape[1:])
        return ops.rotary_tables(self.rotary,
                                 self._positions(pos, times[None, :, None]))

    def _table_row(self, name: str, i: int) -> Tab:
        """Row ``i`` (kept: (S, 1, ...)) of a table computed TABLE_BINS rows at a time."""
        base, tab = self._tabs.get(name, (-1, None))
        if base < 0 or not base <= i < base + TABLE_BINS:
            base = i
            times = torch.arange(i, i + TABLE_BINS, dtype=torch.float64)
            tab = self._bin_tab(times) if name == "bin" else self._ctx_tab(times)
            self._tabs[name] = (base, tab)
        return _rows(tab, slice(i - base, i - base + 1))

    def _init_cache(self) -> None:
        s, h, dh, c, t, nl = self.n_site, self.heads, self.dh, self.n_ctx, self.span, \
            len(self.tblocks)
        front = t - 1 + self.cpad
        self.cap = front + c + 2 * (c + t) + SPARE_SLOTS
        self.qk = torch.zeros(nl, 2, s, h, self.cap, dh)
        self.v = torch.zeros(nl, s, h, self.cap, dh)
        self.g = torch.zeros(nl, s, self.cap, 1 + self.cfg.ctx_dim) if self.context else None
        self.cache = [{"qk": self.qk[j], "q": self.qk[j, 0], "k": self.qk[j, 1],
                       "v": self.v[j], **({} if self.g is None else {"g": self.g[j]})}
                      for j in range(nl)]
        if c:
            sl = slice(front, front + c)
            self.qk[:, 0, :, :, sl] = self.ctx["qc"]
            self._write_ctx(sl, -1)
        self.slot = front + c - 1  # slot of the last bin written
        # neg[w - 1]: the softmax mask of a view holding w bins (w <= T)
        u = torch.arange(c + t)
        npad = t - torch.arange(1, t + 1)  # (T,)
        self.neg = torch.where(u[None, :] < npad[:, None], float("-inf"), 0.0)
        # past[r, e]: query row r (bin i - k + 1 + r) may read extended column e
        e, r, k = torch.arange(c + t + 2 * self.cpad), torch.arange(self.ksize), self.ksize
        self.past = ((e[None, :] >= self.cpad)
                     & (e[None, :] <= self.cpad + c + t - k + r[:, None])).float()

    def _write_ctx(self, sl: slice, time: int) -> None:
        """Context tokens of every layer into slots ``sl``, keys rotated for ``time``."""
        tab = None if self.rotary is None else (
            self._table_row("ctx", time) if time >= 0 else
            self._ctx_tab(torch.tensor([float(time)])))
        self.qk[:, 1, :, :, sl] = ops.rotate(self.ctx["kc"], self._heads(_rows(tab, 0)))
        self.v[:, :, :, sl] = self.ctx["vc"]
        if self.g is not None:
            self.g[:, :, sl] = self.ctx["gc"]

    def _embed(self, counts: torch.Tensor) -> torch.Tensor:
        """counts (n, n_unit) -> token embeddings (S, n, d)."""
        return torch.baddbmm(self.emb_b, counts.expand(self.n_site, -1, -1), self.emb_w)

    def _compact(self) -> None:
        keep = self.n_ctx + self.span - 1 + self.cpad
        src = slice(self.slot - keep + 1, self.slot + 1)
        self.qk[..., :keep, :] = self.qk[..., src, :].clone()
        self.v[..., :keep, :] = self.v[..., src, :].clone()
        if self.g is not None:
            self.g[:, :, :keep] = self.g[:, :, src].clone()
        self.slot = keep - 1

    # -- one bin -----------------------------------------------------------------------------
    @torch.inference_mode()
    def _step(self, counts: np.ndarray, want: bool) -> np.ndarray | None:
        i, t, c, k, cp, s = self.t, self.span, self.n_ctx, self.ksize, self.cpad, self.n_site
        if self.slot + cp + 2 > self.cap:
            self._compact()
        self.slot += 1
        slot = self.slot
        lo = slot - (c + t) + 1  # first slot of the view
        start = max(0, i - t + 1)
        if c and start > 0:  # the context tokens move to just before the view's bins
            self._write_ctx(slice(lo, lo + c), start - 1)
        x = self._embed(torch.from_numpy(counts)[None])[:, 0]  # (S, d)
        tab = None if self.rotary is None else self._table_row("bin", i)  # (S, 1, 2, half)
        neg = self.neg[i][None] if i < t - 1 else None  # (1, V); a full view: no mask
        for p, buf in zip(self.tblocks, self.cache, strict=True):
            qk, v, g = ops.project(p, ops.layer_norm(x, p.ln1), tab)
            buf["qk"][:, :, :, slot] = qk.transpose(0, 1)
            buf["v"][:, :, slot] = v
            kern = None
            if self.context:
                buf["g"][:, slot] = g
                kern = ops.kernels(p, buf["g"][:, lo:slot + 1], neg, k)
                q_rows = buf["q"][:, :, slot - k + 1:slot + 1]
            else:
                q_rows = qk[:, 0, :, None]
            a = ops.span_attention(q_rows, buf["k"][:, :, lo - cp:slot + 1 + cp],
                                   buf["v"][:, :, lo:slot + 1], kern, neg, self.past, k)
            x = ops.mlp_residual(p, x, a.reshape(s, -1))
        if not want:
            return None
        return self._readout(x[:, None], tab)[0]

    def _readout(self, x: torch.Tensor, tab: Tab) -> np.ndarray:
        """x (S, n, d) after the temporal layers, tables (S, n, 2, half) -> velocity (n, A)."""
        xs = x.transpose(0, 1)  # (n, S, d)
        if self.sblocks:
            xs = ops.spatial(self.sblocks, xs, None if tab is None else
                             (tab[0].transpose(0, 1), tab[1].transpose(0, 1)))
        y = ops.layer_norm(xs, self.final).mean(dim=1)  # (n, d)
        for j, (w, b) in enumerate(self.head):
            y = ops.linear(y, w, b)
            y = y if j == len(self.head) - 1 else torch.nn.functional.gelu(y)
        return y.float().numpy()

    # -- the same function, vectorised ------------------------------------------------------
    @torch.no_grad()
    def offline(self, session: SessionData, counts: np.ndarray) -> np.ndarray:
        self.reset(session)
        t, c, k, heads, cp = self.span, self.n_ctx, self.ksize, self.heads, self.cpad
        counts = torch.from_numpy(np.asarray(counts, np.float32))
        n, s = counts.shape[0], self.n_site
        x = self._embed(counts)  # (S, n, d)
        d = x.shape[-1]
        tab = self._bin_tab(torch.arange(n, dtype=torch.float64))  # (S, n, 2, half)
        tab_q = None if tab is None else tuple(z.reshape(s * n, 1, *z.shape[2:]) for z in tab)
        # Per query i: its view's layout (module docstring), as indices into
        # [zero, context tokens, bins], with cp zero columns either side.
        i = torch.arange(n)
        w = torch.clamp(i, max=t - 1) + 1  # bins in the view
        npad = t - w
        start = i - w + 1
        u = torch.arange(c + t)
        bin_idx = 1 + c + start[:, None] + (u[None, :] - npad[:, None] - c)
        ctx_idx = 1 + (u[None, :] - npad[:, None])
        idx = torch.where(u[None, :] < npad[:, None], 0,
                          torch.where(u[None, :] < (npad + c)[:, None], ctx_idx, bin_idx))
        ext = torch.nn.functional.pad(idx, (cp, cp))  # (n, V + 2 cp), 0: the zero slot
        neg = torch.where(u[None, :] < npad[:, None], float("-inf"), 0.0)  # (n, V)
        rows = (1 + c + i[:, None] - k + 1 + torch.arange(k)[None, :]).clamp(min=0)  # (n, k)
        ctx_slot = cp + npad[:, None] + torch.arange(c)[None, :]  # (n, C)
        zero = torch.zeros(s, heads, 1, self.dh)
        for j, p in enumerate(self.tblocks):
            qk, v, g = ops.project(p, ops.layer_norm(x, p.ln1).reshape(s * n, d), tab_q)
            qk = qk.view(s, n, 2, heads, -1).permute(2, 0, 3, 1, 4)  # (2, S, H, n, dh)
            v = v.view(s, n, heads, -1).transpose(1, 2)
            ctx = {name: z[j] for name, z in self.ctx.items()}
            empty = zero[:, :, :0]
            e_q = torch.cat([zero, ctx.get("qc", empty), qk[0]], dim=2)
            e_k = torch.cat([zero, torch.zeros_like(ctx.get("vc", empty)), qk[1]], dim=2)
            e_v = torch.cat([zero, ctx.get("vc", empty), v], dim=2)
            if self.context:
                g = g.view(s, n, -1)
                e_g = torch.cat([torch.zeros_like(g[:, :1]), ctx.get("gc", g[:, :0]), g], 1)
            out = []
            for a0 in range(0, n, CHUNK):
                sl = slice(a0, min(n, a0 + CHUNK))
                m = sl.stop - sl.start
                kv = e_k[:, :, ext[sl]]  # (S, H, m, E, dh)
                if c:
                    kctx = self._ctx_keys_at(ctx["kc"], start[sl] - 1)  # (S, H, m, C, dh)
                    kv.scatter_(3, ctx_slot[sl][None, None, :, :, None].expand_as(kctx), kctx)
                nm = neg[sl].repeat(s, 1)  # (S*m, V)
                kern = None
                if self.context:
                    kern = ops.kernels(p, e_g[:, idx[sl]].reshape(s * m, c + t, -1), nm, k)
                q_rows = e_q[:, :, rows[sl]] if self.context else qk[0][:, :, sl, None]
                a = ops.span_attention(_flat(q_rows), _flat(kv), _flat(e_v[:, :, idx[sl]]),
                                       kern, nm, self.past, k)
                out.append(a.reshape(s, m, d))
            x = ops.mlp_residual(p, x.reshape(s * n, d),
                                 torch.cat(out, dim=1).reshape(s * n, d)).view(s, n, d)
        return self._readout(x, tab)

    def _ctx_keys_at(self, kc: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """Context keys kc (S, H, C, dh) rotated for views whose tokens sit at ``times``
        (m,) -> (S, H, m, C, dh)."""
        kc = kc[:, :, None]
        if self.rotary is None:
            return kc.expand(-1, -1, times.shape[0], -1, -1).clone()
        tab = self._ctx_tab(times.to(torch.float64))  # (S, m, C, 2, half)
        return ops.rotate(kc, self._heads(tab))

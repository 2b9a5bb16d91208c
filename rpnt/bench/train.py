"""``rpnt bench train``: CPU time of one RPNT training step against a standard transformer.

One training step = zero the gradients, forward the finetuning loss (velocity MSE on
the site-pooled tokens), backward, one AdamW step. Variants, all on the same random
windows (B windows x S sites x T bins x N unit slots), interleaved in one process as in
:mod:`rpnt.bench.attention` (process CPU time with one torch thread; minimum and median
over the rounds; ratios of minima):

* ``rpnt``        RPNT as the size preset builds it (context attention, MRoPE with
  context tokens, causal temporal layers then cross-site layers, dropout);
* ``standard``    ``torch.nn.TransformerEncoder`` (pre-LN, GELU, 4x MLP, the same
  dropout, causal SDPA attention) of the same width and number of blocks over the same
  tokens, with the same read-in (N -> d per site) and velocity head: what a plain
  transformer costs on the same data;
* ``rpnt -ctx``   RPNT with standard (SDPA) temporal attention: ``rpnt`` minus this is
  what context attention costs;
* ``rpnt -rope``  RPNT without rotary positions (so without context tokens): the cost of
  MRoPE;
* ``rpnt -drop``  RPNT with dropout 0: the cost of drawing the dropout masks.

Then the ``torch.profiler`` table of one RPNT step's operators by self CPU time: where
the rest of the step goes.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch
from torch import nn

from rpnt.bench.attention import time_variants
from rpnt.bench.units import bench_config, one_thread, random_batch, write_results
from rpnt.errors import RpntError
from rpnt.model.config import RPNTConfig
from rpnt.model.rpnt import RPNT

#: Goal of issue 20: an RPNT step within 1.5 x a standard transformer's.
GOAL = 1.5


class StandardTransformer(nn.Module):
    """The reference: RPNT's read-in and head around ``nn.TransformerEncoder``."""

    def __init__(self, cfg: RPNTConfig, rpnt: RPNT):
        super().__init__()
        d = cfg.d_model
        self.readin = nn.Linear(cfg.n_units, d)
        layer = nn.TransformerEncoderLayer(d, cfg.n_heads, 4 * d, cfg.dropout,
                                           activation="gelu", batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, cfg.n_layers + cfg.n_spatial_layers,
                                            enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = rpnt.velocity_head

    def forward(self, counts: torch.Tensor) -> torch.Tensor:
        """counts (B, S, T, N) -> velocity (B, T, n_axis)."""
        b, s, t, _ = counts.shape
        x = self.readin(counts).reshape(b * s, t, -1)  # (B*S, T, d)
        mask = nn.Transformer.generate_square_subsequent_mask(t)
        x = self.norm(self.blocks(x, mask=mask, is_causal=True))
        return self.head(x.view(b, s, t, -1).mean(dim=1))


def steps(size: str, n_units: int, batch: int, sites: int, window: int,
          seed: int) -> dict[str, Callable[[], None]]:
    """name -> one training step (forward, backward, AdamW) of each variant."""
    base = bench_config(size, n_units, window, sites)
    b = random_batch(base, batch, sites, seed)
    counts, unit_mask, coords, readin, target = (
        b[k] for k in ("counts", "unit_mask", "coords", "readin", "target"))

    def trainer(model: nn.Module, forward: Callable[[], torch.Tensor]) -> Callable[[], None]:
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            nn.functional.mse_loss(forward(), target).backward()
            opt.step()
        return step

    fns: dict[str, Callable[[], None]] = {}
    variants = {"rpnt": {}, "rpnt -ctx": {"attention": "standard"},
                "rpnt -rope": {"pos_encoding": "none"}, "rpnt -drop": {"dropout": 0.0}}
    for name, over in variants.items():
        torch.manual_seed(seed)
        model = RPNT(bench_config(size, n_units, window, sites, **over))
        fns[name] = trainer(model, lambda m=model: m.velocity(counts, unit_mask, coords,
                                                              readin=readin))
        if name == "rpnt":
            torch.manual_seed(seed)
            ref = StandardTransformer(base, RPNT(base))
            fns["standard"] = trainer(ref, lambda r=ref: r(counts))
    return fns


def profile_table(step: Callable[[], None], rows: int = 12) -> str:
    """Operators of a few steps by self CPU time (the torch.profiler table)."""
    from torch.profiler import ProfilerActivity, profile  # only here: heavy, optional use

    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            step()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def run(args: argparse.Namespace) -> int:
    if min(args.units, args.batch, args.sites, args.window, args.repeats) < 1:
        raise RpntError("bench train: --units, --batch, --sites, --window and --repeats "
                        "must be >= 1")
    machine = one_thread()
    print(f"one training step (forward + backward + AdamW), B={args.batch} windows of "
          f"{args.window} bins x {args.sites} sites x {args.units} unit slots")
    results = []
    for size in args.sizes:
        fns = steps(size, args.units, args.batch, args.sites, args.window, args.seed)
        times = time_variants(fns, args.repeats)
        cpu = {n: 1e3 * min(v[0]) for n, v in times.items()}
        med = {n: 1e3 * statistics.median(v[0]) for n, v in times.items()}
        ratio = cpu["rpnt"] / cpu["standard"]
        verdict = "met" if ratio <= GOAL else "NOT met"
        print(f"\n[{size}] CPU ms per step, min / median over {args.repeats} rounds:")
        for n in fns:
            print(f"  {n:11s} {cpu[n]:8.2f} / {med[n]:8.2f}")
        print(f"  rpnt / standard: {ratio:.2f}x (goal <= {GOAL}x: {verdict})")
        shares = {n[6:]: (cpu["rpnt"] - cpu[n]) / cpu["rpnt"]
                  for n in fns if n.startswith("rpnt -")}
        print("  share of an RPNT step: " + ", ".join(
            f"{k} {100 * v:.0f} %" for k, v in
            (("context attention", shares["ctx"]), ("MRoPE", shares["rope"]),
             ("dropout", shares["drop"]))))
        results.append({"size": size, "cpu_ms_min": cpu, "cpu_ms_median": med,
                        "rpnt_over_standard": ratio, "shares": shares})
        if args.profile:
            print(f"\n[{size}] where an RPNT step goes (torch.profiler, 3 steps):")
            print(profile_table(fns["rpnt"]))
    write_results(args.json, args, results, machine)
    return 0

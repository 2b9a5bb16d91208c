"""The pretraining job (``rpnt pretrain``): config, manifest and scenario in, a pretrained
decoder directory out, with the ridge probe of its frozen features in ``meta.json``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from rpnt import ranks
from rpnt.configfile import load_yaml
from rpnt.data.device import choose_device
from rpnt.data.scenarios import resolve_scenario, scenario_manifests
from rpnt.manifest import read_corpus
from rpnt.parts import PretrainPart
from rpnt.provenance import config_hash, provenance
from rpnt.seeding import seed_everything
from rpnt.train.config import model_config, pretrain_config
from rpnt.train.output import default_checkpoint_dir, fit_summary, write_run
from rpnt.train.pretrain import load_pretraining_sessions, pretrain
from rpnt.train.probe import probe_report

log = logging.getLogger(__name__)


def pretrain_job(config: str | Path, manifest: str | Path | Sequence[str | Path],
                 scenario: str, seed: int,
                 out: str | Path, objective: str = "ssl", variant: str | None = None,
                 checkpoint_dir: str | Path | None = None) -> Path:
    """Pretrain RPNT on the sessions scenario ``scenario`` lets pretraining see.

    ``manifest``: one manifest, or several (a corpus across datasets: the scenario's
    rules apply to all of their sessions; its ``n_pretrain_sessions`` draws with
    ``seed``); ``config``: the workflow's resolved config file, read once, of which
    the job reads its part (:class:`rpnt.parts.PretrainPart`, what the workflow's
    digest hashes);
    ``objective``: ``ssl`` or ``joint`` (:func:`rpnt.train.pretrain.pretrain`);
    ``variant``: a ``variants`` entry whose model overrides apply. Rolling checkpoints go
    to ``checkpoint_dir`` (default ``<out>.ckpt``).

    Data parallel when started as several ranks (``torchrun --nproc-per-node N`` or
    ``srun --ntasks N``: :mod:`rpnt.ranks`): every rank loads the sessions and trains on
    its share of each batch; rank 0 alone writes checkpoints, the probe and ``out``.
    """
    seed_everything(seed)
    part = PretrainPart.of(load_yaml(config), scenario, objective, variant)
    pcfg = pretrain_config({"pretrain": part.pretrain}, str(config))
    me = ranks.init(choose_device(pcfg.train.device).type)
    mcfg = model_config({"model": part.model}, str(config))
    manifests = [manifest] if isinstance(manifest, (str, Path)) else list(manifest)
    manifests += [m for m in scenario_manifests(part.scenario, f"scenarios.{scenario}")
                  if m not in {str(x) for x in manifests}]
    table = read_corpus(manifests)
    scen = resolve_scenario(table, part.scenario, scenario).limited(seed)
    sessions = load_pretraining_sessions(table, scen, manifests[0])
    targets = set(scen.target_sessions)
    val_ids = [s.session for s in sessions if s.session not in targets]
    ckpt = Path(checkpoint_dir) if checkpoint_dir else default_checkpoint_dir(out)
    pretraining = {"name": scen.name, "pretrain_sessions": [s.session for s in sessions],
                   "target_sessions": scen.target_sessions,
                   "pretrain_unit_filter": scen.pretrain_unit_filter.to_dict(),
                   "pretrain_on_target_train": scen.pretrain_on_target_train,
                   "objective": objective, "variant": variant,
                   "datasets": sorted({str(s.dataset) for s in sessions}),
                   "bin_size_s": float(sessions[0].bin_size_s)}
    record = {"model": mcfg.to_dict(), "pretrain": {**asdict(pcfg), "seed": seed},
              "scenario": pretraining}
    log.info("pretraining (%s) on %d sessions (scenario %s, seed %d, rank %d of %d)",
             objective, len(sessions), scen.name, seed, me.rank, me.world)
    try:
        decoder, result = pretrain(sessions, mcfg, pcfg, seed, ckpt, ckpt / "log",
                                   val_sessions=val_ids, run_key=config_hash(record),
                                   objective=objective)
    finally:
        ranks.finish()
    if not me.main:
        return Path(out)
    probe = probe_report(decoder, sessions, pcfg.probe_sessions, seed)
    write_run(decoder, out, ckpt / "log", ckpt, stage="pretrain", model="rpnt_pretrain",
              seed=seed, scenario=scen.name, pretraining=pretraining,
              fit=fit_summary(result), probe=probe, provenance=provenance(record))
    log.info("pretrained %d steps in %.1f s -> %s; probe R² pretrained %s, random %s, "
             "counts %s", result.steps_done, result.seconds, out, probe.get("pretrained"),
             probe.get("random"), probe.get("counts"))
    return Path(out)

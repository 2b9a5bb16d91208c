"""The peer job (``rpnt baseline``): Wiener filter, GRU, NDT or POYO trained on a target
session's labelled trials, then scored in memory."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from rpnt import provenance as prov
from rpnt.configfile import load_yaml
from rpnt.data.scenarios import target_units
from rpnt.decoders.base import write_skip
from rpnt.decoders.poyo import SKIP_REASON
from rpnt.errors import RpntError
from rpnt.jobs.scoring import Scoring, score_trained
from rpnt.parts import BaselinePart
from rpnt.provenance import provenance
from rpnt.seeding import seed_everything
from rpnt.store import load_session
from rpnt.train.config import labelled_trials
from rpnt.train.output import default_checkpoint_dir, write_run
from rpnt.train.peers import train_baseline

log = logging.getLogger(__name__)


def baseline_job(model: str, store: str | Path, seed: int, out: str | Path,
                 config: str | Path | None = None, scenario: str | None = None,
                 budget: str = "all", checkpoint_dir: str | Path | None = None,
                 scoring: Scoring | None = None) -> dict[str, Any] | None:
    """Train peer ``model`` (:data:`rpnt.rows.BASELINE_MODELS`) on ``store``, then score it
    (``scoring``; returns the metrics record, None without ``metrics``).

    Hyperparameters from the config's ``baselines.<model>`` (defaults without
    ``config``); ``budget`` (``all`` or a number of trials) and the config's ``labels``
    section say which labelled trials it may use and how it selects (as
    :func:`rpnt.jobs.finetune.finetune_job`). POYO without torch-brain writes a skip
    record instead (with a warning).
    """
    seed_everything(seed)
    out = Path(out)
    if scenario and not config:
        raise RpntError("--scenario needs --config CFG.yaml (the scenarios section)")
    # the one read of the config: the job's part, which the workflow's digest hashes
    cfg = load_yaml(config) if config else {}
    part = BaselinePart.of(cfg, scenario, model, budget, str(config))
    section = part.baseline or {}
    prov_cfg = cfg if config else None  # beyond the part, only its hash is recorded
    session = target_units(load_session(store), part.scenario)
    if model == "poyo" and not prov.poyo_available():
        log.warning("POYO SKIPPED: %s. Install it with: pip install 'rpnt[peers]' "
                    "(torch-brain==0.2.1). Writing a skip record to %s so the table "
                    "says so.", SKIP_REASON, out)
        skip = write_skip(out, "poyo", SKIP_REASON, seed=seed, budget=str(budget),
                          scenario=scenario, store=str(store), provenance=provenance(prov_cfg))
        return score_trained(scoring or Scoring(), session, out, skip, None,
                             scenario=scenario, config=prov_cfg, store=store)
    labelled, selection = labelled_trials({"labels": part.labels}, str(config), session,
                                          budget, seed)
    ckpt = Path(checkpoint_dir) if checkpoint_dir else default_checkpoint_dir(out)
    log_dir = ckpt / "logs"
    if log_dir.exists():
        shutil.rmtree(log_dir)  # the trainer rewrites the history from the checkpoint
    trained = model != "wiener"
    dec, info = train_baseline(model, session, section, seed, ckpt_dir=ckpt,
                               log_dir=log_dir if trained else None, budget=labelled,
                               selection=selection)
    meta = write_run(dec, out, log_dir, ckpt if trained else None,
                     model=model, seed=seed, scenario=scenario, budget=labelled.budget,
                     session=session.session, store=str(store), fit=info,
                     data={**labelled.info(), "selection": selection},
                     units=int(session.n_unit),
                     provenance=provenance(prov_cfg, section=section, store=str(store),
                                           budget=labelled.budget, selection=selection))
    log.info("%s trained on %s (%d units, %s labelled trials): %s", model, session.session,
             session.n_unit, labelled.budget, info)
    return score_trained(scoring or Scoring(), session, out, meta, dec, scenario=scenario,
                         config=prov_cfg, store=store)

"""The evaluation job (``rpnt evaluate``): a saved decoder scored on one session store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rpnt.configfile import load_yaml
from rpnt.data.scenarios import apply_scenario_units
from rpnt.errors import RpntError
from rpnt.eval.evaluate import evaluate_model, write_scores
from rpnt.store import load_session


def evaluate_job(model_dir: str | Path, store: str | Path, out: str | Path, *,
                 predictions: str | Path | None = None, scenario: str | None = None,
                 config: str | Path | None = None, tags: dict[str, Any] | None = None,
                 split: str = "test", stream: bool = False) -> dict[str, Any]:
    """Score the decoder in ``model_dir`` on ``store`` (the scenario's units): the metrics
    JSON ``out`` (and the ``predictions`` .npz) written atomically; returns the record.

    Scoring draws nothing at random (a decoder's unit choice is fixed by its own
    ``eval_seed``), so this equals the scores the training job wrote in memory.
    """
    cfg = load_yaml(config) if config else None
    if scenario and cfg is None:
        raise RpntError("--scenario needs --config CFG.yaml (the scenarios section)")
    session = apply_scenario_units(load_session(store), cfg, scenario)
    record, score = evaluate_model(model_dir, session, scenario=scenario, tags=tags,
                                   config=cfg, split=split, stream=stream)
    record["store_path"] = str(store)
    return write_scores(record, score, session, out, predictions, split=split)

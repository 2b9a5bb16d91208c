"""How a training job scores the decoder it has just trained: in memory, on the session
it trained on (units already selected), exactly as ``rpnt evaluate`` scores the saved
decoder (tests/test_finetune_cli.py compares the two)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rpnt.data.session import SessionData
from rpnt.decoders.base import Decoder
from rpnt.eval.evaluate import score_decoder, skipped_record, summary, write_scores


@dataclass(frozen=True)
class Scoring:
    """Where a training job writes the scores of its decoder (``metrics`` None: it does
    not score), and extra fields of the record (``tags``)."""

    metrics: Path | None = None
    predictions: Path | None = None
    tags: dict[str, Any] = field(default_factory=dict)


def score_trained(scoring: Scoring, session: SessionData, out: str | Path,
                  meta: dict[str, Any], decoder: Decoder | None, *,
                  scenario: str | None, config: dict[str, Any] | None,
                  store: str | Path) -> dict[str, Any] | None:
    """Score ``decoder`` (None: ``meta`` is a skip record) and write the files of
    ``scoring``; returns the record (None when the job does not score), and prints its
    one-line summary for the job log."""
    if scoring.metrics is None:
        return None
    if decoder is None:
        record, score = skipped_record(meta, session, scenario=scenario, tags=scoring.tags,
                                       config=config, model_dir=out), None
    else:
        record, score = score_decoder(decoder, meta, session, scenario=scenario,
                                      tags=scoring.tags, config=config, model_dir=out)
    record["store_path"] = str(store)
    write_scores(record, score, session, scoring.metrics, scoring.predictions)
    print(summary(record))
    return record

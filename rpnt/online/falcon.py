"""FALCON's decoder interface around any streaming decoder (optional extra ``falcon``).

``falcon_challenge.interface.BCIDecoder`` (falcon-challenge 1.0.2) is called by the
official evaluator as: ``reset(dataset_tags)`` when a batch of datafiles (sessions, one
per batch row; unused rows are served zeros) starts, then per bin ``on_done(dones)``
(rows whose trial just ended) and ``predict(neural_observations (batch, channels)) ->
(batch, out_dim)``; ``observe`` feeds a bin to history only. :class:`FalconDecoder`
keeps one stream per batch row; history runs on across trials, as the evaluator's stream
does (it batches sessions, not trials, "to not disrupt neural history").

falcon-challenge is imported lazily: its ``config`` module needs hydra. Without the
package, :class:`FalconDecoder` derives from :class:`BCIDecoderProtocol`, a stand-in
with the same methods, so the adapter and its tests run either way.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from rpnt.data.session import SessionData
from rpnt.errors import RpntError
from rpnt.online.base import StreamingDecoder


class BCIDecoderProtocol(abc.ABC):
    """The methods of ``falcon_challenge.interface.BCIDecoder`` (1.0.2), for use without it."""

    def __init__(self, task_config: Any, batch_size: int = 1):
        self._task_config = task_config
        self.batch_size = batch_size

    @abc.abstractmethod
    def reset(self, dataset_tags: Sequence[str] = ("",)) -> None:
        """As the official interface."""

    @abc.abstractmethod
    def predict(self, neural_observations: np.ndarray) -> np.ndarray:
        """As the official interface."""

    def observe(self, neural_observations: np.ndarray) -> None:
        self.predict(neural_observations)

    @abc.abstractmethod
    def on_done(self, dones: np.ndarray) -> None:
        """As the official interface."""

    def set_batch_size(self, batch_size: int) -> None:
        self.batch_size = batch_size


def bci_decoder_base() -> type:
    """``falcon_challenge.interface.BCIDecoder`` when installed, else the stand-in."""
    try:
        from falcon_challenge.interface import BCIDecoder  # optional: the falcon extra
    except ImportError:
        return BCIDecoderProtocol
    return BCIDecoder


class FalconDecoder(bci_decoder_base()):  # type: ignore[misc]
    """A FALCON ``BCIDecoder`` over rpnt streams.

    ``make_stream``: builds a fresh :class:`StreamingDecoder` (one per batch row), e.g.
    ``lambda: load_stream(model_dir)``; ``sessions``: dataset tag -> the session's
    metadata (:class:`SessionData`: units, sites, subject, date, task).
    """

    def __init__(self, task_config: Any, make_stream: Callable[[], StreamingDecoder],
                 sessions: Mapping[str, SessionData], batch_size: int = 1):
        super().__init__(task_config, batch_size)
        self.sessions = dict(sessions)
        self.streams = [make_stream() for _ in range(batch_size)]
        self.active: list[bool] = [False] * batch_size
        self.out_dim = self.streams[0].n_axis

    def reset(self, dataset_tags: Sequence[str] = ("",)) -> None:
        self.active = [False] * self.batch_size
        for b, tag in enumerate(list(dataset_tags)[:self.batch_size]):
            key = str(tag)
            if not key:
                continue
            if key not in self.sessions:
                raise RpntError(f"FALCON adapter: dataset tag {key!r} has no session; pass "
                                "sessions={tag: SessionData} for every datafile evaluated")
            self.streams[b].reset(self.sessions[key])
            self.active[b] = True

    def _rows(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs)
        if obs.ndim != 2 or obs.shape[0] > self.batch_size:
            raise RpntError(f"FALCON adapter: neural_observations must be (batch <= "
                            f"{self.batch_size}, channels), got {obs.shape}")
        return obs

    def predict(self, neural_observations: np.ndarray) -> np.ndarray:
        obs = self._rows(neural_observations)
        out = np.zeros((obs.shape[0], self.out_dim), np.float32)
        for b in range(obs.shape[0]):
            if self.active[b]:
                out[b] = self.streams[b].step(obs[b])
        return out

    def observe(self, neural_observations: np.ndarray) -> None:
        obs = self._rows(neural_observations)
        for b in range(obs.shape[0]):
            if self.active[b]:
                self.streams[b].observe(obs[b])

    def on_done(self, dones: np.ndarray) -> None:
        """Trial ends: history runs on across trials (nothing to do)."""
        return None

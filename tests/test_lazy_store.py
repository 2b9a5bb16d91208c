"""Lazy stores: counts read from Zarr on demand equal the eager read, through a cache
whose size stays under its bound whatever the number of sessions read."""

from __future__ import annotations

import numpy as np
from eval_helpers import synthetic_session, write_session_store

from rpnt.data.batches import SessionWindows, Vocab
from rpnt.data.lazy import ChunkCache, LazyCounts
from rpnt.data.sampler import EpochSampler
from rpnt.store import load_session


def test_lazy_counts_equal_the_eager_read_and_the_cache_stays_bounded(tmp_path):
    paths = [write_session_store(synthetic_session(seed=i, n_unit=30), tmp_path / f"s{i}.zarr")
             for i in range(3)]
    eager = [load_session(p) for p in paths]
    lazy = [load_session(p, lazy=True) for p in paths]
    assert all(s.spike_times is None for s in lazy)
    rng = np.random.default_rng(0)
    for e, z in zip(eager, lazy, strict=True):
        a = np.asarray(e.spike_counts)
        assert isinstance(z.spike_counts, LazyCounts) and z.spike_counts.shape == a.shape
        idx = rng.integers(0, a.shape[0], (6, 9))
        np.testing.assert_array_equal(z.spike_counts[idx], a[idx])
        train = e.split_bins("train")
        np.testing.assert_array_equal(z.spike_counts[train], a[train])
        keep = rng.random(a.shape[1]) < 0.5  # a unit filter selects without reading
        np.testing.assert_array_equal(z.select_units(keep).spike_counts[idx], a[idx][..., keep])
        np.testing.assert_array_equal(np.asarray(z.spike_counts), a)
    # the same batches from lazy and eager sessions
    def batches(sessions):
        vocab = Vocab.from_sessions(sessions)
        ws = [SessionWindows(s, vocab, ["subject"], 16, 20) for s in sessions]
        sampler = EpochSampler(ws, 8, subsets=2, seed=1)
        return [sampler.draw(i)["counts"] for i in range(5)]
    for x, y in zip(batches(eager), batches(lazy), strict=True):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    # a cache smaller than the corpus keeps at most its bound (plus the chunk in use)
    one = np.asarray(eager[0].spike_counts).nbytes
    cache = ChunkCache(max_bytes=int(1.5 * one))
    views = [LazyCounts(p, cache=cache) for p in paths]
    for _ in range(3):
        for v in views:
            v[np.arange(5)]
    assert cache.bytes <= 1.5 * one and cache.reads == 9  # every read evicted another


def test_bench_corpus_worker_reports_memory(tmp_path, capsys):
    """One measured process of `rpnt bench corpus`, in process: it pretrains on lazily
    read stores and prints its RSS before loading, after loading and at its peak."""
    import json

    from rpnt.bench.corpus import worker

    paths = [write_session_store(synthetic_session(seed=i, n_unit=30), tmp_path / f"s{i}.zarr")
             for i in range(2)]
    worker({"stores": paths, "lazy": True, "steps": 2})
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("RESULT ")][-1]
    r = json.loads(line[7:])
    assert 0 < r["before_mb"] <= r["loaded_mb"] <= r["peak_mb"]

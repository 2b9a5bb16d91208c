"""Shared test settings: offline, single-threaded, deterministic."""

import os

# Offline by construction: the dandi client must never try the network for a version
# check, and must not reuse a cache between tests.
os.environ.setdefault("DANDI_NO_ET", "1")
os.environ.setdefault("DANDI_CACHE", "ignore")
os.environ.setdefault("MPLBACKEND", "Agg")
# Two cores on CI: keep each test process to one BLAS / torch thread.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # the package declares torch; only a broken install lacks it
    pass

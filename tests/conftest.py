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


#: Modules that take minutes (SLURM time limits, the tiny workflow, processes run twice),
#: longest first. tests/run.sh runs the suite on two workers (pytest-xdist, whole modules
#: in this order); started first, they overlap each other and the short tests instead of
#: ending the run alone.
LONG_MODULES = ("test_slurm.py", "test_workflow_e2e.py", "test_determinism.py",
                "test_workflow_resume.py")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        name = item.path.name
        return LONG_MODULES.index(name) if name in LONG_MODULES else len(LONG_MODULES)

    items.sort(key=rank)  # stable: the order within each module is kept

"""One seed per job: every random number generator a job may touch, seeded from it.

torch seeds its default generator from the operating system in every new process, and
numpy's legacy global generator does too, so any draw a job leaves unseeded (a library's
initialisation, a parameter added at finetuning) differs from one run of the same
command to the next. Every command that trains or scores calls :func:`seed_everything`
with the job's seed first; code that needs randomness of its own still takes an explicit
``seed`` / ``Generator`` (the batch sampler, few-shot trial choice, validation masks).
"""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's legacy global generator and torch (CPU and every
    CUDA device) with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the legacy global, for libraries using it
    torch.manual_seed(seed)

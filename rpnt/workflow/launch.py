"""How a job starts its data-parallel ranks (``rpnt pretrain`` under torchrun or srun).

The number of ranks of the pretraining rule is a Snakemake resource, set in the profile
(``set-resources: pretrain: {tasks: 4, ...}``) or on the command line
(``--set-resources pretrain:tasks=2``), never in the config: ranks change how a run is
computed, not what it computes (rpnt.train.trainer), so they are no part of the config
digest that decides what reruns.

- ``mpi`` set (the SLURM profiles: ``mpi: "srun"``, with ``tasks``, ``nodes``, ``gpu``):
  the job's shell starts the ranks with ``srun -n <tasks> --kill-on-bad-exit=1`` (a
  failing rank ends the others rather than leaving them in a collective) inside the allocation
  sbatch made (the SLURM executor plugin's way for multi-task jobs);
- ``tasks`` > 1 without ``mpi`` (one machine, local executor): ``torchrun --standalone
  --nproc-per-node <tasks>`` (``python -m torch.distributed.run``);
- otherwise one process, as before.
"""

from __future__ import annotations

import shlex
import sys
from typing import Any

from rpnt.errors import RpntError


def rank_launcher(resources: Any) -> str:
    """The prefix of the ``rpnt`` command that starts its ranks ("" for one process);
    ``resources``: the job's Snakemake resources (attribute access, as rules get them)."""
    tasks = getattr(resources, "tasks", None)
    tasks = 1 if tasks is None else tasks
    mpi = getattr(resources, "mpi", None)
    if not isinstance(tasks, int) or tasks < 1:
        raise RpntError(f"resource tasks={tasks!r} of the pretraining rule must be a "
                        "positive integer (the number of data-parallel ranks)")
    if mpi:
        # one rank failing ends the others at once (they would wait in a collective)
        stop = " --kill-on-bad-exit=1" if str(mpi).split()[0].endswith("srun") else ""
        return f"{mpi} -n {tasks}{stop} "
    if tasks > 1:
        return (f"{shlex.quote(sys.executable)} -m torch.distributed.run --standalone "
                f"--nproc-per-node {tasks} -m ")
    return ""

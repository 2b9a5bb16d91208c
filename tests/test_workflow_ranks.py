"""Data-parallel pretraining in the workflow: ranks from resources, the sbatch request.

The pretraining rule starts its ranks from its Snakemake resources (rpnt.workflow.launch):
``srun -n <tasks>`` with ``mpi`` (SLURM profiles), torchrun with ``tasks`` > 1 on one
machine, one process otherwise. The GPU profile documents 4-GPU and 2-node pretraining
in a comment; the test applies those lines to the profile, dry-runs the workflow with it
and builds the sbatch request with the SLURM executor plugin's own functions from the
resources the dry run planned.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from rpnt.errors import RpntError
from rpnt.workflow.launch import rank_launcher
from tests.workflow_helpers import make_workdir, run_snakemake

REPO = Path(__file__).resolve().parent.parent


def test_rank_launcher_follows_the_resources():
    assert rank_launcher(SimpleNamespace()) == ""
    assert rank_launcher(SimpleNamespace(tasks=1)) == ""
    assert rank_launcher(SimpleNamespace(tasks=4, mpi="srun")) == "srun -n 4 --kill-on-bad-exit=1 "
    local = rank_launcher(SimpleNamespace(tasks=2))
    assert local.startswith(shlex.quote(sys.executable)) and local.endswith(
        "-m torch.distributed.run --standalone --nproc-per-node 2 -m ")
    with pytest.raises(RpntError, match="tasks"):
        rank_launcher(SimpleNamespace(tasks=0))


def documented_layouts() -> dict[str, tuple[dict, str]]:
    """The data-parallel lines of slurm/gpu/config.yaml's pretrain block:
    {name: (resources, documented sbatch flags)}."""
    text = (REPO / "slurm/gpu/config.yaml").read_text()
    found = re.findall(r"#\s+(4 GPUs of one node|2 nodes x 4 GPUs):\s+(.+)\n"
                       r"\s+#\s+sbatch \.\.\. (.+)", text)
    out = {}
    for name, res, flags in found:
        out[name] = (yaml.safe_load("{" + res + "}"), flags.strip())
    return out


class _Resources(dict):
    __getattr__ = dict.__getitem__


def _planned_resources(block: str) -> _Resources:
    line = block.split("resources:")[1].splitlines()[0]
    res = _Resources()
    for item in line.split(", "):
        k, _, v = item.strip().partition("=")
        res[k] = int(v) if v.isdigit() else v
    return res


@pytest.mark.slow  # two dry runs, ~10 s
def test_gpu_profile_documents_multi_gpu_and_multi_node_pretraining(tmp_path):
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    layouts = documented_layouts()
    assert set(layouts) == {"4 GPUs of one node", "2 nodes x 4 GPUs"}
    wd = make_workdir(tmp_path / "wf")
    for i, (name, (resources, flags)) in enumerate(layouts.items()):
        prof = yaml.safe_load((wd / "slurm/gpu/config.yaml").read_text())
        block = prof["set-resources"]["pretrain"]
        block.pop("gpu")
        block.update(resources)
        (tmp_path / f"p{i}").mkdir()
        (tmp_path / f"p{i}" / "config.yaml").write_text(yaml.safe_dump(prof))
        out = run_snakemake(wd, "-n", "-p", "--profile", str(tmp_path / f"p{i}"),
                            "--configfile", "config/tiny.yaml").stdout
        jobs = re.split(r"\n\s*rule ", out)
        pre = next(j for j in jobs if j.startswith("pretrain:"))
        tasks = resources["tasks"]
        launch = f"exec srun -n {tasks} --kill-on-bad-exit=1 rpnt pretrain --config"
        assert launch in pre, pre[-1500:]
        planned = _planned_resources(pre)
        job = SimpleNamespace(resources=planned, threads=8, name="pretrain")
        sbatch = get_submit_command(job, {"run_uuid": "u", "slurm_logfile": "l",
                                          "comment_str": "c", "account": "",
                                          "partition": "", "workdir": ""})
        sbatch += set_gres_string(job)
        print(f"{name}: {sbatch}")
        for flag in flags.split():
            if flag.startswith("--") and flag != "--mem":
                assert flag in sbatch.split(), (flag, sbatch)
        assert f"--mem {planned['mem_mb']}" in sbatch
    # the finetuning jobs stay one process on one GPU
    fin = next(j for j in jobs if j.startswith("finetune:"))
    assert "srun -n" not in fin and "torch.distributed.run" not in fin

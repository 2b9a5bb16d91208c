"""A real `rpnt finetune` process killed by SIGTERM resumes to the uninterrupted result."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from eval_helpers import write_session_store
from train_helpers import make_session

from rpnt.cli import main
from rpnt.decoders.base import load_decoder

torch.set_num_threads(1)

CONFIG = {
    "model": {"size": "tiny", "d_model": 16, "n_layers": 1, "n_spatial_layers": 1,
              "n_heads": 2, "n_units": 16, "window": 20},
    "finetune": {"train": {"steps": 150, "batch_size": 8, "lr": 3e-3, "warmup_steps": 5,
                           "eval_every": 25, "checkpoint_every": 10, "patience": 0,
                           "log_every": 5}},
}


@pytest.mark.slow  # a real training process, killed and rerun
def test_sigterm_then_resume_equals_uninterrupted(tmp_path):
    store = write_session_store(make_session("sub-C_ses-CO-20161013", seed=4, n_trials=16,
                                             units_per_site=10), tmp_path / "s.zarr")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))

    def argv(out):
        return ["finetune", "--config", str(cfg), "--mode", "scratch", "--store", store,
                "--seed", "1", "--out", str(out)]

    assert main(argv(tmp_path / "ref")) == 0

    out, ckpt = tmp_path / "run", tmp_path / "run.ckpt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "rpnt", *argv(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (ckpt / "last.pt").exists() and proc.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # what SLURM sends before preempting a job
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert "SIGTERM received" in err and "rerun the same command" in err
    assert not out.exists()  # no half-written output
    step = torch.load(ckpt / "last.pt", weights_only=True)["step"]
    assert 0 < step < 150

    assert main(argv(out)) == 0  # resumes from the checkpoint
    ref, got = load_decoder(tmp_path / "ref"), load_decoder(out)
    sr, sg = ref.state_dict(), got.state_dict()
    assert all(torch.equal(sr[k], sg[k]) for k in sr)
    assert (out / "metrics.jsonl").read_text() == (tmp_path / "ref" / "metrics.jsonl"
                                                   ).read_text()
    assert not ckpt.exists()

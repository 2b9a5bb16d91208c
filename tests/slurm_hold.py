"""Holding a SLURM job's training process at a step until SLURM's time-limit warning.

A test job that must be stopped by its time limit at a known step, without training for
minutes: :class:`HoldAtStep` watches the job's live training log and, at the step asked,
freezes the process (SIGSTOP) until the signal SLURM sends before the limit (``sbatch
--signal``) is pending for it, then thaws it (SIGCONT), so that it handles the signal at
its next step. The processes of a job are found in ``/proc`` (the test cluster runs on
this host; root reads every process's environment).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path


def job_process(job_id: str, program: str, subcommand: str) -> int | None:
    """The pid of this host's process of SLURM job ``job_id`` that runs ``program
    subcommand ...`` (e.g. ``rpnt finetune``), or None. Found by its command line and its
    ``SLURM_JOB_ID`` (the job's step sets it), so no other process matches."""
    tag = f"SLURM_JOB_ID={job_id}".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
            if tag not in (proc / "environ").read_bytes().split(b"\0"):
                continue
        except OSError:  # gone meanwhile, or not readable
            continue
        if any(Path(a).name == program and argv[i + 1:i + 2] == [subcommand]
               for i, a in enumerate(argv)):
            return int(proc.name)
    return None


def process_state(pid: int) -> tuple[str, set[int]] | None:
    """A process's state letter (``T``: stopped) and the signals pending for it (sent to
    it or to one of its threads, not yet handled), or None when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    state = re.search(r"^State:\s+(\S)", status, re.M)
    mask = 0
    for m in re.finditer(r"^(?:SigPnd|ShdPnd):\s+([0-9a-fA-F]+)$", status, re.M):
        mask |= int(m[1], 16)
    return (state[1] if state else "?"), {s for s in range(1, 65) if mask >> (s - 1) & 1}


def logged_step(metrics: Path) -> int:
    """The last step of a live training log (rpnt's metrics.jsonl), 0 before any."""
    try:
        lines = metrics.read_text().splitlines(keepends=True)
    except OSError:
        return 0
    steps = [json.loads(line)["step"] for line in lines if line.endswith("\n")]
    return steps[-1] if steps else 0


class HoldAtStep:
    """A poll (called about once a second until it returns True) that holds the first
    attempt of a job at ``step``.

    ``attempt_logs()`` lists the job's attempt logs (the first names its SLURM job on a
    line ``SLURM job <id> ===``); ``metrics`` is the live training log of the run. Once
    the attempt's ``program subcommand`` process exists, its command line (from
    ``subcommand`` on) and environment are kept (:attr:`argv`, :attr:`environ`); once
    the log reaches ``step`` it is frozen and ``on_hold()`` is called; it is thawed when
    ``sig`` is pending for it (or it was resumed or ended otherwise). Returns True without
    holding when the process ends before it reaches ``step`` (or ``timeout_s`` passes).
    """

    def __init__(self, attempt_logs: Callable[[], list[Path]], metrics: Path, step: int,
                 program: str, subcommand: str, sig: int = signal.SIGTERM,
                 on_hold: Callable[[], None] | None = None, timeout_s: float = 300) -> None:
        self.attempt_logs, self.metrics, self.step = attempt_logs, metrics, step
        self.program, self.subcommand, self.sig = program, subcommand, sig
        self.on_hold, self.timeout_s = on_hold, timeout_s
        self.job: str | None = None
        self.pid: int | None = None
        self.argv: list[str] = []
        self.environ: dict[str, str] = {}
        self.held_at: int | None = None  #: the logged step when frozen
        self.held_s = 0.0  #: how long it stayed frozen
        self.frozen = False

    def _find(self) -> bool:
        logs = self.attempt_logs()
        m = re.search(r"SLURM job (\d+) ===", logs[0].read_text()) if logs else None
        pid = m and job_process(m[1], self.program, self.subcommand)
        if not pid:
            return False
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
            env = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
        except OSError:
            return False
        self.job, self.pid = m[1], pid
        self.argv = argv[argv.index(self.subcommand):]
        self.environ = dict(kv.split("=", 1) for kv in env.split("\0") if "=" in kv)
        return True

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def release(self) -> None:
        """Thaw the process if it is still frozen (call it in a ``finally``)."""
        if self.frozen:
            self._signal(signal.SIGCONT)
            self.frozen = False
            self.held_s = time.monotonic() - self.held_s

    def __call__(self) -> bool:
        if self.pid is None and not self._find():
            return False
        if self.held_at is None:  # watch it train, closely: freeze it at `step`
            deadline = time.monotonic() + self.timeout_s
            while time.monotonic() < deadline:
                state = process_state(self.pid)
                if state is None or state[0] == "Z":
                    break
                if logged_step(self.metrics) >= self.step:
                    self._signal(signal.SIGSTOP)
                    self.frozen, self.held_s = True, time.monotonic()
                    self.held_at = logged_step(self.metrics)
                    if self.on_hold is not None:
                        self.on_hold()
                    return False
                time.sleep(0.02)
            return True  # it ended first (an earlier signal, an error), or never got there
        state = process_state(self.pid)
        if state is not None and state[0] == "T" and self.sig not in state[1]:
            return False  # frozen, no signal yet
        self.release()
        return True

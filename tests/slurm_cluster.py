"""A real single-node SLURM cluster for tests, from Debian's packages.

``python tests/slurm_cluster.py start DIR`` / ``stop DIR`` from a shell, or in tests::

    cluster = SlurmCluster(tmp_dir)
    cluster.start()          # munged + slurmctld + slurmd, waits until the node is idle
    ...                      # sbatch / squeue / snakemake --executor slurm
    cluster.stop()           # kills only the daemons it started (pid files)

Everything lives in DIR (fresh state per test session): munge key and socket, slurm.conf,
state, spool, logs, pid files. SLURM reads ``/etc/slurm/slurm.conf`` inside jobs (the
Snakemake job step strips ``SLURM_CONF``), so that path becomes a symlink to our file for
the cluster's lifetime; a pre-existing file is moved aside and put back by :meth:`stop`.

No cgroups (proctrack/linuxproc, task/none), no accounting (``squeue`` status mode,
``MinJobAge=3600`` so every finished job of a test run stays visible), one node
``localhost`` with all cores, ~90 % of the memory, and one stand-in GPU (``Gres=gpu:1``
backed by /dev/null) so that jobs asking ``--gpus=1`` are scheduled as on a GPU cluster.
Facts behind each setting: shared/reference/slurm-local.md.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

PACKAGES = ("munge", "slurmctld", "slurmd", "slurm-client")
ETC_CONF = Path("/etc/slurm/slurm.conf")
PARTITION = "debug"


def missing_binaries() -> list[str]:
    return [b for b in ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo")
            if shutil.which(b) is None]


def why_unavailable() -> str | None:
    """Why a cluster cannot be started here (None: it can), installing packages if needed.

    Needs root (daemons, /etc/slurm) and, when the binaries are missing, apt-get.
    """
    if not missing_binaries():
        return None if os.geteuid() == 0 else "not root: cannot start slurmctld/slurmd"
    if os.geteuid() != 0:
        return f"not root and SLURM is not installed ({', '.join(missing_binaries())} missing)"
    if shutil.which("apt-get") is None:
        return "apt-get is not available to install " + " ".join(PACKAGES)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"],
                ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"{' '.join(cmd)} failed: {' | '.join(tail)}")
    missing = missing_binaries()
    if missing:
        raise RuntimeError(f"installed {' '.join(PACKAGES)} but {missing} still missing")
    return None


def _mem_total_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


class SlurmCluster:
    """One munged + slurmctld + slurmd on localhost, all state under ``root``."""

    def __init__(self, root: str | Path, gpus: int = 1, min_job_age: int = 3600) -> None:
        if gpus not in (0, 1):
            raise ValueError("the test cluster offers 0 or 1 (stand-in) GPU")
        self.root = Path(root).resolve()
        self.cpus = os.cpu_count() or 1
        self.mem_mb = int(_mem_total_mb() * 0.9)
        self.gpus = gpus
        self.min_job_age = min_job_age
        self.partition = PARTITION
        self._etc_backup: Path | None = None
        self._linked = False

    # ------------------------------------------------------------------ paths
    def p(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    @property
    def conf(self) -> Path:
        return self.p("etc", "slurm.conf")

    @property
    def munge_socket(self) -> Path:
        return self.p("munge", "sock", "munge.socket.2")

    def pid_files(self) -> dict[str, Path]:
        return {"slurmd": self.p("run", "slurmd.pid"),
                "slurmctld": self.p("run", "slurmctld.pid"),
                "munged": self.p("munge", "munged.pid")}

    # ------------------------------------------------------------------ config
    def write_config(self) -> None:
        for d in ("etc", "run", "log", "state", "spool", "munge/sock"):
            self.p(d).mkdir(parents=True, exist_ok=True)
        # munged refuses a socket folder others cannot reach, and a readable key.
        os.chmod(self.p("munge"), 0o755)
        os.chmod(self.p("munge", "sock"), 0o755)
        key = self.p("munge", "munge.key")
        if not key.exists():
            key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        gres = "GresTypes=gpu\n" if self.gpus else ""
        node_gres = f" Gres=gpu:{self.gpus}" if self.gpus else ""
        # (slurm.conf has no line continuation: the backslash-newline below is Python's)
        self.conf.write_text(f"""\
# Generated by tests/slurm_cluster.py: a throw-away single-node test cluster.
ClusterName=rpnttest
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
CredType=cred/munge
StateSaveLocation={self.p("state")}
SlurmdSpoolDir={self.p("spool")}
SlurmctldPidFile={self.pid_files()["slurmctld"]}
SlurmdPidFile={self.pid_files()["slurmd"]}
SlurmctldLogFile={self.p("log", "slurmctld.log")}
SlurmdLogFile={self.p("log", "slurmd.log")}
SlurmctldPort=16817
SlurmdPort=16818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
SwitchType=switch/none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MinJobAge={self.min_job_age}
MailProg=/bin/true
SchedulerParameters=sched_interval=2
{gres}NodeName=localhost NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.mem_mb}\
{node_gres} State=UNKNOWN
PartitionName={self.partition} Nodes=localhost Default=YES MaxTime=INFINITE State=UP
""")
        if self.gpus:
            # A GPU gres needs a device file; /dev/null stands in (no cgroup device
            # constraint here), so --gpus=N jobs schedule as on a real GPU node.
            self.p("etc", "gres.conf").write_text("NodeName=localhost Name=gpu File=/dev/null\n")

    def _link_etc(self) -> None:
        ETC_CONF.parent.mkdir(parents=True, exist_ok=True)
        if ETC_CONF.is_symlink() or ETC_CONF.exists():
            if ETC_CONF.is_symlink() and not ETC_CONF.resolve().exists():
                ETC_CONF.unlink()  # a dangling link left by an earlier, killed test run
            else:
                self._etc_backup = ETC_CONF.with_name(f"slurm.conf.rpnt-backup-{os.getpid()}")
                os.replace(ETC_CONF, self._etc_backup)
        ETC_CONF.symlink_to(self.conf)
        gres = ETC_CONF.with_name("gres.conf")
        if self.gpus and not gres.exists() and not gres.is_symlink():
            gres.symlink_to(self.p("etc", "gres.conf"))
        self._linked = True

    def _unlink_etc(self) -> None:
        if not self._linked:
            return
        if ETC_CONF.is_symlink() and ETC_CONF.resolve() == self.conf:
            ETC_CONF.unlink()
        gres = ETC_CONF.with_name("gres.conf")
        if gres.is_symlink() and gres.resolve() == self.p("etc", "gres.conf"):
            gres.unlink()
        if self._etc_backup is not None and self._etc_backup.exists():
            os.replace(self._etc_backup, ETC_CONF)
        self._linked = False

    # ------------------------------------------------------------------ daemons
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def _run(self, cmd: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, env=self.env(), capture_output=True, text=True,
                              timeout=timeout)

    def start(self, timeout: float = 60) -> None:
        """Start munged, slurmctld and slurmd; wait until the node is idle."""
        self.write_config()
        self._link_etc()
        try:
            self._start_daemons(timeout)
        except BaseException:
            self.stop()
            raise

    def _start_daemons(self, timeout: float) -> None:
        munged = shutil.which("munged") or "/usr/sbin/munged"
        proc = self._run([munged, "--force",
                          f"--key-file={self.p('munge', 'munge.key')}",
                          f"--socket={self.munge_socket}",
                          f"--pid-file={self.pid_files()['munged']}",
                          f"--log-file={self.p('munge', 'munged.log')}",
                          f"--seed-file={self.p('munge', 'munged.seed')}"])
        if proc.returncode != 0:
            raise RuntimeError(f"munged failed: {proc.stderr.strip()}")
        self._run([shutil.which("slurmctld") or "/usr/sbin/slurmctld", "-f", str(self.conf)])
        self._run([shutil.which("slurmd") or "/usr/sbin/slurmd", "-f", str(self.conf),
                   "-N", "localhost"])
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            proc = self._run(["sinfo", "-h", "-o", "%T"])
            state = proc.stdout.strip()
            if state == "idle":
                return
            if state.startswith(("down", "drain")):
                self._run(["scontrol", "update", "nodename=localhost", "state=resume"])
            time.sleep(0.5)
        raise RuntimeError(f"SLURM node not idle after {timeout:.0f} s (state {state!r}); "
                           f"see {self.p('log')}")

    def cancel_all(self, timeout: float = 30) -> None:
        """Cancel every job of this (private) cluster and wait until none is running, so
        that slurmd ends their job steps before it stops."""
        try:
            ids = self._run(["squeue", "-h", "-o", "%i"]).stdout.split()
            if not ids:
                return
            self._run(["scancel", *ids])
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                states = self._run(["squeue", "-h", "-o", "%T"]).stdout.split()
                if not any(s in ("RUNNING", "PENDING", "COMPLETING", "CONFIGURING")
                           for s in states):
                    return
                time.sleep(0.5)
        except (OSError, subprocess.SubprocessError):
            return  # the controller is already gone

    def stop(self) -> None:
        """Cancel leftover jobs, then stop only the daemons this cluster started (by their
        pid files)."""
        if self.pid_files()["slurmctld"].exists():
            self.cancel_all()
        for name, pid_file in self.pid_files().items():
            try:
                pid = int(pid_file.read_text().strip())
            except (OSError, ValueError):
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            for _ in range(50):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                print(f"{name} (pid {pid}) ignored SIGTERM; sending SIGKILL", file=sys.stderr)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self._unlink_etc()

    def log_tail(self, n: int = 30) -> str:
        out = []
        for name in ("slurmctld.log", "slurmd.log"):
            path = self.p("log", name)
            if path.exists():
                lines = path.read_text(errors="replace").splitlines()[-n:]
                out.append(f"--- {path}\n" + "\n".join(lines))
        return "\n".join(out)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print("usage: python tests/slurm_cluster.py start|stop DIR", file=sys.stderr)
        return 2
    cluster = SlurmCluster(argv[1])
    if argv[0] == "start":
        reason = why_unavailable()
        if reason:
            print(f"cannot start SLURM: {reason}", file=sys.stderr)
            return 1
        cluster.start()
        print(f"SLURM up: partition {cluster.partition}, {cluster.cpus} CPUs, "
              f"{cluster.mem_mb} MB, {cluster.gpus} GPU(s); config {cluster.conf}")
    else:
        cluster._linked = ETC_CONF.is_symlink()
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

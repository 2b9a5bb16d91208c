"""``rpnt bench ingest``: ingest of a large session vs. the h5py read floor, side by side.

The floor is reading exactly the datasets ingest needs (spike times and index, unit ids and
electrodes, the velocity, position and acceleration series, trial columns) with h5py
alone, in this process, after a warm-up read (page cache warm, imports done).

- Default: ``ingest_file`` timed in this process after a warm-up run (imports done), its
  fastest run against the fastest floor read; peak memory is the peak-RSS increase of one
  ingest as the OS counts it (native HDF5, Blosc and numpy buffers included), measured in
  a fresh process whose imports are done before the measured block, against the bytes the
  floor read.
- ``--cli``: the ``rpnt ingest`` command as a user runs it, a fresh process each time
  (Python start-up and imports included), on the file without and with per-spike
  waveforms (as DANDI 000688 has them), against the same floor; the command's peak RSS is
  the whole process's (VmHWM at exit).

Every run prints the CPU it ran on; timings on a shared machine vary, so the fastest and
the median of ``--repeats`` runs are printed.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rpnt.bench.bigfile import BigSpec, write_big_nwb
from rpnt.ingest import ingest_file
from rpnt.machine import PEAK_RSS_ENV, machine_summary, usable_cpus
from rpnt.provenance import sha256_file

FLOOR_DATASETS = (
    "units/spike_times", "units/spike_times_index", "units/id", "units/electrodes",
    "units/electrodes_index", "general/extracellular_ephys/electrodes/location",
    "general/extracellular_ephys/electrodes/group_name",
    "processing/behavior/Velocity/cursor_vel/data",
    "processing/behavior/Velocity/cursor_vel/timestamps",
    "processing/behavior/Position/cursor_pos/data",
    "processing/behavior/Position/cursor_pos/timestamps",
    "processing/behavior/Acceleration/cursor_acc/data",
    "processing/behavior/Acceleration/cursor_acc/timestamps",
    "intervals/trials/start_time", "intervals/trials/stop_time",
    "intervals/trials/go_cue_time", "intervals/trials/result", "intervals/trials/target_id",
)

#: Child process of the memory measurement: warm-up ingest (imports, codecs), then one
#: ingest inside PeakRSS; prints the increase in bytes.
_MEMORY_CHILD = """
import sys
from rpnt.ingest import ingest_file
from rpnt.machine import PeakRSS
small, big, out, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ingest_file(small, out + ".warm", threads=threads)
with PeakRSS() as m:
    ingest_file(big, out, threads=threads)
print(m.increase if m.increase is not None else -1)
"""


def read_floor(path: Path) -> int:
    """Read the datasets ingest needs with h5py alone; return the bytes read."""
    import h5py

    total = 0
    with h5py.File(path, "r") as f:
        for name in FLOOR_DATASETS:
            if name in f:
                total += f[name][...].nbytes
    return total


def _timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    return s[len(s) // 2] if len(s) % 2 else 0.5 * (s[len(s) // 2 - 1] + s[len(s) // 2])


def _spread(xs: list[float]) -> str:
    return f"min {min(xs):.3f} s, median {_median(xs):.3f} s, max {max(xs):.3f} s"


def _verdict(ratio: float, goal: float) -> str:
    return f"goal <= {goal:g}x: {'met' if ratio <= goal else 'NOT met'}"


def _memory_increase(small: Path, big: Path, out: Path, threads: int) -> int | None:
    """Peak-RSS increase (bytes) of one ingest of ``big`` in a fresh process."""
    r = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(small), str(big), str(out),
                        str(threads)], capture_output=True, text=True, check=True)
    v = int(r.stdout.strip().splitlines()[-1])
    return None if v < 0 else v


def _run_cli(nwb: Path, out: Path, threads: int) -> tuple[float, int]:
    """One ``rpnt ingest`` in a fresh process: (wall s, the process's peak RSS bytes).

    The command reports its own peak RSS (VmHWM) at exit: the child's rusage cannot be
    used, as Linux carries the forking parent's high-water mark (this bench's, with the
    generated arrays) into the child's ru_maxrss.
    """
    cmd = [sys.executable, "-m", "rpnt", "ingest", str(nwb), "--out", str(out),
           "--threads", str(threads)]
    env = {**os.environ, PEAK_RSS_ENV: "1"}  # the command prints its VmHWM at exit
    t = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                       env=env)
    wall = time.perf_counter() - t
    if r.returncode:
        raise RuntimeError(f"rpnt ingest failed: {r.stderr[-2000:]}")
    peak = [ln.split()[1] for ln in r.stderr.splitlines() if ln.startswith("RPNT_PEAK_RSS")]
    return wall, int(peak[-1]) if peak and peak[-1] != "None" else 0


def _bench_cli(args: argparse.Namespace, tmp: Path, spec) -> int:
    files = {"without waveforms": tmp / "bench.nwb", "with per-spike waveforms":
             tmp / "bench_wf.nwb"}
    write_big_nwb(files["with per-spike waveforms"], spec, waveforms_per_spike=True)
    print(f"with per-spike waveforms: {files['with per-spike waveforms'].stat().st_size / 1e9:.2f}"
          " GB NWB (48 int16 samples per spike, never read by ingest)")
    print(f"rpnt ingest command: fresh process, --threads {args.threads}, "
          f"{args.repeats} runs per file, each against the in-process h5py floor")
    start = _timed(lambda: subprocess.run([sys.executable, "-c", "import numpy, h5py"],
                                          check=True), args.repeats)
    for label, nwb in files.items():
        bytes_read = read_floor(nwb)  # warm-up: page cache, h5py code paths
        store = tmp / "cli.zarr"
        _run_cli(nwb, store, args.threads)  # warm-up: page cache of Python and packages
        floor, cli, rss = [], [], []
        for _ in range(args.repeats):  # interleaved, so both see the same load
            floor += _timed(lambda nwb=nwb: read_floor(nwb), 1)
            shutil.rmtree(store)
            wall, peak = _run_cli(nwb, store, args.threads)
            cli.append(wall)
            rss.append(peak)
        shutil.rmtree(store)
        sha = _timed(lambda nwb=nwb: sha256_file(nwb), 2)
        ratio, f0 = min(cli) / min(floor), min(floor)
        print(f"[{label}] floor {_spread(floor)} ({bytes_read / 1e6:.0f} MB read)")
        print(f"[{label}] rpnt ingest {_spread(cli)}")
        print(f"[{label}] command / floor: {ratio:.1f}x fastest, "
              f"{_median(cli) / _median(floor):.1f}x median ({_verdict(ratio, 15)}); "
              f"command peak RSS {max(rss) / 1e6:.0f} MB (whole process)")
        print(f"[{label}] bounds: Python start + numpy + h5py imports {min(start):.3f} s "
              f"({min(start) / f0:.1f}x the floor); SHA-256 of the whole "
              f"{nwb.stat().st_size / 1e9:.2f} GB file (provenance, in a second thread) "
              f"{min(sha):.3f} s ({min(sha) / f0:.1f}x)")
    return 0


def run(args: argparse.Namespace) -> int:
    args.threads = args.threads or usable_cpus()
    print(f"machine: {machine_summary()}")
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp_name:
        tmp = Path(tmp_name)
        nwb, store = tmp / "bench.nwb", tmp / "bench.zarr"
        # spikes go on 50 ms past the last behaviour sample, as in DANDI 000688: ingest
        # drops those after the last bin (and compacts the rest)
        spec = BigSpec(n_units=args.units, duration_s=args.duration_s,
                       mean_rate_hz=args.rate_hz, seed=args.seed, behaviour_tail_s=-0.05)
        t = time.perf_counter()
        n_spikes = write_big_nwb(nwb, spec)
        print(f"generated {nwb.stat().st_size / 1e6:.0f} MB NWB: {args.units} units, "
              f"{args.duration_s / 3600:.2f} h, {n_spikes / 1e6:.2f} M spikes "
              f"in {time.perf_counter() - t:.1f} s")
        if args.cli:
            return _bench_cli(args, tmp, spec)
        bytes_read = read_floor(nwb)  # warm-up: page cache, h5py code paths
        ingest_file(nwb, store, force=True, threads=args.threads)  # warm-up: imports, codecs
        logging.getLogger("rpnt.ingest").setLevel(logging.ERROR)  # its warnings, once above
        floor, ing, floor_cpu, ing_cpu, phases = [], [], [], [], []
        for _ in range(max(1, args.repeats)):
            t, c = time.perf_counter(), time.process_time()
            read_floor(nwb)
            floor.append(time.perf_counter() - t)
            floor_cpu.append(time.process_time() - c)
            shutil.rmtree(store)  # replacing an old store is not part of ingest
            t, c = time.perf_counter(), time.process_time()
            phases.append({})
            ingest_file(nwb, store, threads=args.threads, timings=phases[-1])
            ing.append(time.perf_counter() - t)
            ing_cpu.append(time.process_time() - c)
        store_mb = sum(p.stat().st_size for p in store.rglob("*") if p.is_file()) / 1e6
        shutil.rmtree(store)
        small = tmp / "small.nwb"
        write_big_nwb(small, BigSpec(n_units=4, duration_s=20.0, seed=args.seed))
        peak = _memory_increase(small, nwb, tmp / "mem.zarr", args.threads)
    t_floor, t_ing = min(floor), min(ing)
    ratio = t_ing / t_floor
    print(f"h5py floor (same datasets): {t_floor:.3f} s, {bytes_read / 1e6:.0f} MB read")
    print(f"ingest:                     {t_ing:.3f} s  ({n_spikes / t_ing / 1e6:.1f} M spikes/s)"
          f", store {store_mb:.0f} MB, {args.threads} threads")
    print(f"ratio to floor:             {ratio:.1f}x fastest, {_median(ing) / _median(floor):.1f}x"
          f" median   ({_verdict(ratio, 10)})")
    if peak is None:
        print("peak memory (peak RSS increase): not measurable here (no /proc/self/clear_refs)")
    else:
        mem = peak / bytes_read
        print(f"peak memory (peak RSS increase): {peak / 1e6:.0f} MB = {mem:.2f}x bytes read "
              f"({_verdict(mem, 3)})")
    # CPU time (all threads of this process) is less distorted by other jobs on the machine
    print(f"CPU time: floor {min(floor_cpu):.3f} s, ingest {min(ing_cpu):.3f} s, ratio "
          f"{min(ing_cpu) / max(min(floor_cpu), 1e-9):.1f}x")
    best = phases[ing.index(t_ing)]
    print(f"fastest ingest by phase ({args.threads} threads): " + ", ".join(
        f"{k} {v:.3f} s" for k, v in best.items()))
    print(f"all timings (s): floor {', '.join(f'{x:.3f}' for x in floor)}; "
          f"ingest {', '.join(f'{x:.3f}' for x in ing)}")
    return 0

"""``rpnt bench ingest``: ingest of a large session vs. the h5py read floor, in one process.

The floor is reading exactly the datasets ingest needs (spike times and index, unit ids and
electrodes, the velocity and position series, trial columns) with h5py alone. Both are
timed in this process after a warm-up read (warm page cache, imports done before timing).
Peak memory is measured with tracemalloc in a separate ingest run (tracemalloc slows
allocation-heavy code, so it is off while timing) and compared with the bytes the floor read.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

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



def read_floor(path: Path) -> int:
    """Read the datasets ingest needs with h5py alone; return the bytes read."""
    import h5py

    total = 0
    with h5py.File(path, "r") as f:
        for name in FLOOR_DATASETS:
            if name in f:
                total += f[name][...].nbytes
    return total


def run(args: argparse.Namespace) -> int:
    import os
    import tracemalloc

    from rpnt.ingest import ingest_file

    args.threads = args.threads or len(os.sched_getaffinity(0))
    from rpnt.ingest.bigfile import BigSpec, write_big_nwb

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        nwb, store = Path(tmp) / "bench.nwb", Path(tmp) / "bench.zarr"
        spec = BigSpec(n_units=args.units, duration_s=args.duration_s,
                       mean_rate_hz=args.rate_hz, seed=args.seed)
        t = time.perf_counter()
        n_spikes = write_big_nwb(nwb, spec)
        print(f"generated {nwb.stat().st_size / 1e6:.0f} MB NWB: {args.units} units, "
              f"{args.duration_s / 3600:.2f} h, {n_spikes / 1e6:.2f} M spikes "
              f"in {time.perf_counter() - t:.1f} s")
        bytes_read = read_floor(nwb)  # warm-up: page cache, h5py code paths
        ingest_file(nwb, store, force=True, threads=args.threads)  # warm-up: imports, zarr codecs
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
        shutil.rmtree(store)
        tracemalloc.start()
        ingest_file(nwb, store, threads=args.threads)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        t_floor, t_ing = min(floor), min(ing)
        store_mb = sum(p.stat().st_size for p in store.rglob("*") if p.is_file()) / 1e6
    ratio, mem = t_ing / t_floor, peak / bytes_read
    print(f"h5py floor (same datasets): {t_floor:.3f} s, {bytes_read / 1e6:.0f} MB read")
    print(f"ingest:                     {t_ing:.3f} s  ({n_spikes / t_ing / 1e6:.1f} M spikes/s)"
          f", store {store_mb:.0f} MB")
    print(f"ratio to floor:             {ratio:.1f}x   (goal <= 10x: "
          f"{'met' if ratio <= 10 else 'NOT met'})")
    print(f"peak memory (tracemalloc):  {peak / 1e6:.0f} MB = {mem:.2f}x bytes read "
          f"(goal <= 3x: {'met' if mem <= 3 else 'NOT met'})")
    # CPU time (all threads of this process) is less distorted by other jobs on the machine
    print(f"CPU time: floor {min(floor_cpu):.3f} s, ingest {min(ing_cpu):.3f} s, ratio "
          f"{min(ing_cpu) / max(min(floor_cpu), 1e-9):.1f}x")
    best = phases[ing.index(t_ing)]
    print(f"fastest ingest by phase ({args.threads} threads): " + ", ".join(
        f"{k} {v:.3f} s" for k, v in best.items()))
    print(f"all timings (s): floor {', '.join(f'{x:.3f}' for x in floor)}; "
          f"ingest {', '.join(f'{x:.3f}' for x in ing)}")
    return 0

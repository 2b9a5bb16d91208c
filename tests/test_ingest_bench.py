"""rpnt bench ingest: the generator writes a valid 000688-layout file; the bench reports."""

from __future__ import annotations

import re

import h5py
import numpy as np

from rpnt.bench.bigfile import BigSpec, write_big_nwb
from rpnt.bench.ingest import FLOOR_DATASETS, read_floor
from rpnt.cli import main
from rpnt.ingest import ingest_file
from rpnt.machine import machine_summary
from rpnt.store import load_session


def test_generator_layout_and_ingest(tmp_path):
    p = tmp_path / "big.nwb"
    n = write_big_nwb(p, BigSpec(n_units=7, duration_s=30.0, mean_rate_hz=20.0))
    with h5py.File(p) as f:
        assert f["units/spike_times"].shape == (n,)
        assert f["units/waveforms"].shape == (7, 48)  # present, never read by ingest
        assert f["units/spike_times_index"][-1] == n
        present = [d for d in FLOOR_DATASETS if d in f]
    assert len(present) == len(FLOOR_DATASETS)
    assert read_floor(p) > n * 8
    s = load_session(ingest_file(p, tmp_path / "s.zarr"))
    assert s.spike_counts.sum() == n and s.n_unit == 7
    assert np.all(np.diff(s.spike_times) >= 0)
    assert set(s.unit_area) == {"M1", "PMd"}


def test_bench_command_prints_ratio_and_memory(tmp_path, capsys):
    code = main(["bench", "ingest", "--units", "5", "--duration-s", "20", "--repeats", "1",
                 "--workdir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert re.search(r"ratio to floor:\s+[\d.]+x", out)
    assert re.search(r"peak memory \(peak RSS increase\): \d+ MB = [\d.]+x bytes read", out)
    assert f"machine: {machine_summary()}" in out
    assert re.search(r"M spikes/s", out)
    assert list(tmp_path.iterdir()) == []  # the temporary files are gone
    assert re.search(r"fastest ingest by phase \(\d+ threads\): read [\d.]+ s", out)


def test_bench_cli_times_the_command_with_and_without_waveforms(tmp_path, capsys):
    code = main(["bench", "ingest", "--cli", "--units", "4", "--duration-s", "20",
                 "--repeats", "1", "--threads", "1", "--workdir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert f"machine: {machine_summary()}" in out
    for label in ("without waveforms", "with per-spike waveforms"):
        assert re.search(rf"\[{label}\] command / floor: [\d.]+x fastest", out)
        assert re.search(rf"\[{label}\] rpnt ingest min [\d.]+ s", out)
        assert re.search(rf"\[{label}\] bounds: Python start .* SHA-256 of the whole", out)
    assert list(tmp_path.iterdir()) == []


def test_ingest_command_imports_no_heavy_library(tmp_path):
    """'rpnt ingest' (a fresh process) imports neither torch, pandas, xarray, zarr,
    matplotlib, pynwb, dandi nor snakemake: their imports cost more than the ingest."""
    import subprocess
    import sys

    p = tmp_path / "big.nwb"
    write_big_nwb(p, BigSpec(n_units=3, duration_s=20.0))
    heavy = ("torch", "pandas", "xarray", "zarr", "matplotlib", "pynwb", "dandi", "snakemake")
    code = ("import sys; from rpnt.cli import main; "
            f"assert main(['ingest', {str(p)!r}, '--out', {str(tmp_path / 's.zarr')!r}]) == 0; "
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_threads_do_not_change_the_store(tmp_path):
    import xarray as xr

    p = tmp_path / "big.nwb"
    write_big_nwb(p, BigSpec(n_units=11, duration_s=60.0, mean_rate_hz=30.0))
    one = ingest_file(p, tmp_path / "one.zarr", threads=1)
    timings: dict[str, float] = {}
    two = ingest_file(p, tmp_path / "two.zarr", threads=2, timings=timings)
    assert set(timings) == {"read", "sort, count, bin", "sha256 wait", "write"}
    a, b = xr.open_zarr(one).load(), xr.open_zarr(two).load()
    xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())
    assert a.attrs == b.attrs
    # byte for byte: every metadata and chunk file
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(two) for p in two.rglob("*") if p.is_file())
    assert len(files) > 20
    for rel in files:
        assert (one / rel).read_bytes() == (two / rel).read_bytes(), rel

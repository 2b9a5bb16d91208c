"""Facts about the machine a benchmark runs on: CPU model, cores, peak resident memory.

Benchmarks (``rpnt bench``) print these next to their ratios, so that a figure quoted in
the docs names the CPU it was measured on, and memory is what the operating system saw
(peak RSS: native buffers of HDF5, Blosc, Zarr and torch included, which ``tracemalloc``
misses).
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), or what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_flags() -> set[str]:
    """CPU feature flags (``/proc/cpuinfo``; empty where unknown)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, not the host's core count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def machine_summary() -> str:
    """One line for benchmark output: CPU model, usable CPUs, SIMD level, Python."""
    flags = cpu_flags()
    simd = next((s for s in ("avx512f", "avx2", "avx", "sse4_2", "neon") if s in flags), "")
    simd = {"avx512f": "AVX-512"}.get(simd, simd.upper())
    parts = [cpu_model(), f"{usable_cpus()} CPUs usable"]
    if simd:
        parts.append(simd)
    parts.append(f"Python {platform.python_version()}")
    return ", ".join(parts)


def _status_kib(field: str) -> int | None:
    try:
        m = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(m.group(1)) if m else None


def rss_bytes() -> int | None:
    """Current resident set size of this process (None where /proc is missing)."""
    kib = _status_kib("VmRSS")
    return None if kib is None else kib * 1024


#: Set in the environment of an ``rpnt`` command to have it print ``RPNT_PEAK_RSS <bytes>``
#: (its VmHWM) on stderr at exit (``rpnt bench ingest --cli``).
PEAK_RSS_ENV = "RPNT_REPORT_PEAK_RSS"


def peak_rss_bytes() -> int | None:
    """Peak resident set size of this process since start or the last reset (VmHWM)."""
    kib = _status_kib("VmHWM")
    return None if kib is None else kib * 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux >= 4.0); False if not."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


class PeakRSS:
    """Peak RSS *increase* over a block, as the OS counts it.

    >>> with PeakRSS() as m:
    ...     work()
    >>> m.increase  # bytes above the RSS at entry; None where it cannot be measured

    The peak mark is reset at entry, so an earlier, larger peak of the process does not
    hide this block's. Where the mark cannot be reset (no ``/proc/self/clear_refs``),
    ``increase`` is None rather than a wrong number.
    """

    def __init__(self) -> None:
        self.start: int | None = None
        self.peak: int | None = None
        self.increase: int | None = None

    def __enter__(self) -> PeakRSS:
        ok = reset_peak_rss()
        self.start = rss_bytes() if ok else None
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak = peak_rss_bytes()
        if self.start is not None and self.peak is not None:
            self.increase = max(0, self.peak - self.start)

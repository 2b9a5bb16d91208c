"""rpnt.machine: the CPU named, and peak RSS that counts native (numpy) allocations."""

import numpy as np
import pytest

from rpnt import machine


def test_cpu_model_and_summary_name_something():
    assert machine.cpu_model()
    assert machine.usable_cpus() >= 1
    assert machine.cpu_model() in machine.machine_summary()


@pytest.mark.skipif(not machine.reset_peak_rss(), reason="no /proc/self/clear_refs")
def test_peak_rss_sees_a_native_allocation_and_resets():
    with machine.PeakRSS() as big:
        a = np.ones(50_000_000 // 8)  # 50 MB, allocated and touched natively by numpy
        del a
    assert big.increase is not None and big.increase >= 40e6
    # A later block must not inherit the earlier peak.
    with machine.PeakRSS() as small:
        b = np.ones(1000)
        del b
    assert small.increase is not None and small.increase < 20e6

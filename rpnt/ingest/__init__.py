"""NWB -> Zarr store (schema v2): adapters, binning, splits, and ``ingest_file``.

Library use::

    from rpnt.ingest import IngestConfig, ingest_file
    ingest_file("sub-C_ses-CO-20160909_behavior+ecephys.nwb", "C.zarr",
                cfg=IngestConfig(bin_ms=20, adapter="auto"))
"""

from rpnt.ingest.core import IngestConfig, build_dataset, ingest_file
from rpnt.ingest.splits import SplitConfig

__all__ = ["IngestConfig", "SplitConfig", "build_dataset", "ingest_file"]

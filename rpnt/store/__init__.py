"""Zarr store schema v2: one session per store (see docs/store-schema.md).

``write_store`` validates a store's content against the schema and writes it atomically
(temporary sibling, rename) as a Zarr v3 group that ``xr.open_zarr`` opens with its
consolidated metadata; ``open_store`` opens it lazily with xarray; ``load_session`` reads
it all into a :class:`rpnt.data.session.SessionData` of numpy arrays, the only form
training, peers and evaluation consume. Stores of schema v1 (raw spikes in time order)
are still read.

The writer writes the Zarr v3 format itself (JSON metadata and Blosc-compressed chunk
files, exactly the layout xarray's ``to_zarr`` produces, consolidated metadata included)
instead of going through xarray and zarr: importing those two costs a fresh ``rpnt
ingest`` process more than the ingest itself. Content is handed over as a
:class:`StoreData` (plain numpy arrays) or an ``xr.Dataset``.
"""

from rpnt.store.read import as_str, load_session, open_store, time_order
from rpnt.store.schema import (
    CHUNK_BYTES,
    COORDS,
    READABLE_VERSIONS,
    REQUIRED_ATTRS,
    SCHEMA_VERSION,
    SPLIT_ATTRS,
    VARIABLES,
    Runs,
    StoreData,
    Var,
    validate,
)
from rpnt.store.write import write_store

__all__ = ["CHUNK_BYTES", "COORDS", "READABLE_VERSIONS", "REQUIRED_ATTRS", "SCHEMA_VERSION",
           "SPLIT_ATTRS", "VARIABLES", "Runs", "StoreData", "Var", "as_str", "load_session",
           "open_store", "time_order", "validate", "write_store"]

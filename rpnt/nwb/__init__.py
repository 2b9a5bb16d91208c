"""NWB files: reading the layouts rpnt ingests (``read``) and writing the skeleton the
simulator and the ingest benchmark share (``write``)."""

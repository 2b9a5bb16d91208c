"""Reporting: metrics records of saved decoders, the benchmark table and its figures.

Scoring itself (R², stitching, the scored bins) is :mod:`rpnt.scoring`; see
docs/architecture.md "Metrics JSON" for the protocol. Every number is computed fresh
from predictions in each call; nothing is accumulated across calls.
"""

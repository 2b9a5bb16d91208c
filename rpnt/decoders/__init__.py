"""Velocity decoders (RPNT and its peers) behind one interface, saved one way.

See :mod:`rpnt.decoders.base`.
"""

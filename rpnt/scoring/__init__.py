"""Scoring, as the peers score: R² per output, stitched windows, the bins that count.

:mod:`rpnt.scoring.metrics` (R² per axis, then averaged) and :mod:`rpnt.scoring.stitch`
(overlapping windows averaged per bin over the scored bins of a split). Training (model
selection on the valid trials), the simulator's noise ceiling, the linear decoder and
evaluation all score through here, so every number in the benchmark means the same.
"""

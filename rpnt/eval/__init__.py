"""Evaluation: R², stitched predictions on test trials, metrics JSON, tables and figures.

Scoring follows the peers (see docs/architecture.md "Metrics JSON"): test trials only,
overlapping windows (50 %) averaged per bin before scoring, only on the store's
``eval_mask`` bins, R² per output (vx, vy) then averaged, per session. Every number is
computed fresh from predictions in each call; nothing is accumulated across calls.
"""

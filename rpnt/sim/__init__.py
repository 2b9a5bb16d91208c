"""The simulator: realistic NHP reaching sessions in the DANDI 000688 NWB layout.

Modules: :mod:`presets` (fixed session lists), :mod:`kinematics` (center-out and
random-target behaviour), :mod:`neural` (latent dynamics, tuning, spiking),
:mod:`nwb` (the 000688 writer), :mod:`generate` (sessions -> dandiset folder),
:mod:`ceiling` (noise ceiling from the true rates), :mod:`realism` (summary statistics).
"""

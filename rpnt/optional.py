"""Optional dependencies: whether the POYO peer (``torch-brain``, the ``peers`` extra) is
installed, asked without importing it (the workflow plans jobs with this)."""

from __future__ import annotations

import importlib.util

#: What the benchmark reports for POYO when torch-brain is missing.
POYO_SKIP_REASON = "torch-brain not installed"


def poyo_available() -> bool:
    """True when ``torch_brain`` can be imported."""
    try:
        return importlib.util.find_spec("torch_brain") is not None
    except (ImportError, ValueError):
        return False

"""A pooled cell of the benchmark table (mean ± sample std of R² over runs) and the CSV
writer the table's files share."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Cell:
    """Pooled R² (``r2.mean`` of each record) of one model in one scenario and budget."""

    values: list[float] = field(default_factory=list)
    runs: dict[tuple[str, Any], float] = field(default_factory=dict)  #: (session, seed)
    undefined: int = 0  #: records with a NaN R²
    skipped: str | None = None  #: reason when every record was skipped

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan

    @property
    def std(self) -> float:
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else math.nan

    def text(self, digits: int = 3, sign: bool = False) -> str:
        if not self.values:
            if self.skipped:
                return self.skipped
            return "R² undefined" if self.undefined else "no results"
        std = "n/a" if math.isnan(self.std) else f"{self.std:.{digits}f}"
        note = f", {self.undefined} undefined" if self.undefined else ""
        mean = f"{self.mean:+.{digits}f}" if sign else f"{self.mean:.{digits}f}"
        return f"{mean} ± {std} (n={self.n}{note})"


def write_csv_rows(rows: Sequence[Sequence[Any]]) -> str:
    """Rows as CSV text (\\n line ends)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerows(rows)
    return buf.getvalue()

"""Small statistics helpers shared by the probe and the report (no numpy needed)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of `values`; nan when empty. Nearest rank, like
    wrk's histogram, returns an observed value rather than an interpolated one."""
    if not values:
        return math.nan
    s = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(s)))
    return float(s[min(rank, len(s)) - 1])


def median(values: Iterable[float | None]) -> float | None:
    """Median of the numbers present (None and nan skipped); None when there are none."""
    xs = sorted(v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v)))
    if not xs:
        return None
    mid = len(xs) // 2
    return float(xs[mid]) if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2

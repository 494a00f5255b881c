"""Mean and spread over seeds, and the one rule for calling a difference between two
configurations "resolved".

The rule: |mean a - mean b| > 2 x the larger of the two sample standard deviations (ddof 1)
over seeds, and at least 2 values on each side (with one there is no spread). Every verdict
the project publishes (README, docs/results.md, docs/findings.md, the sweep's --confirm, the
ablation report, benchmarks/mcc_vs_scratch.py) uses it. With n >= 2 seeds a side it is
stricter than 2 Welch standard errors of the difference (max(s) >= sqrt((s_a^2 + s_b^2) / n)),
which at 3 seeds is a loose bar; docs/method.md says why.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """(mean, sample standard deviation, ddof 1) of `values`: (None, None) when empty, std
    None with one value."""
    if not values:
        return None, None
    mean = statistics.mean(values)
    return mean, statistics.stdev(values) if len(values) > 1 else None


def resolved(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether mean(a) - mean(b) is resolved: larger in size than twice the larger of the two
    standard deviations, with at least 2 values on each side."""
    if len(a) < 2 or len(b) < 2:
        return False
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    return abs(ma - mb) > 2 * max(sa, sb)

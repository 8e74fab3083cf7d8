"""The statistics of a verdict: paired log-ratios with a bootstrap CI (the gate), a ratio of
medians with a bootstrap CI and a rank test (stored reports), and the verdict rules.

A change is reported as candidate / baseline - 1: +5% means the candidate is 5% slower.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..measure.stats import cluster_bootstrap_medians

VERDICTS = ("pass", "fail", "inconclusive", "improved")


@dataclass(frozen=True)
class Thresholds:
    """``fail``: the estimate above ``fail_above`` and the CI's lower bound above ``ci_above``
    (both as fractions, 0.03 = +3%); ``improved``: the same mirrored; ``pass``: the CI's upper
    bound below ``pass_below``, i.e. any regression is ruled out down to that size.
    Anything else is ``inconclusive``."""

    fail_above: float = 0.03
    ci_above: float = 0.02
    pass_below: float = 0.05

    def __post_init__(self) -> None:
        if not 0 <= self.ci_above <= self.fail_above <= self.pass_below:
            raise ValueError("thresholds must satisfy 0 <= ci-above <= fail-above <= pass-below")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Estimate:
    change: float  # candidate / baseline - 1
    ci_low: float
    ci_high: float
    n: int
    method: str
    p_value: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def paired_change(baseline: list[float], candidate: list[float], groups: list[int] | None = None,
                  resamples: int = 2000, seed: int = 0) -> Estimate:
    """Median of the paired log-ratios ln(candidate_i / baseline_i) and its bootstrap 95% CI.

    ``groups`` names the round (pair of worker processes) of each pair. Processes differ a
    little (memory layout, thread placement), so pairs of one round are not independent of
    each other: the bootstrap then resamples rounds first and pairs within them, and the CI
    widens when the rounds disagree.
    """
    a, b = np.asarray(baseline, dtype=float), np.asarray(candidate, dtype=float)
    if len(a) != len(b) or len(a) < 2:
        raise ValueError("paired samples need two or more pairs of equal length")
    if (a <= 0).any() or (b <= 0).any():
        raise ValueError("times must be positive")
    logs = np.log(b / a)
    rng = np.random.default_rng(seed)
    clusters = [logs[np.asarray(groups) == g] for g in dict.fromkeys(groups)] if groups else [logs]
    if len(clusters) > 1:
        medians = cluster_bootstrap_medians(clusters, resamples, rng)
        how = f"{len(clusters)} rounds then pairs resampled"
    else:
        medians = np.median(logs[rng.integers(0, len(logs), size=(resamples, len(logs)))], axis=1)
        how = "pairs resampled"
    low, high = np.percentile(medians, [2.5, 97.5])
    return Estimate(math.expm1(float(np.median(logs))), math.expm1(float(low)), math.expm1(float(high)), len(logs),
                    f"median of {len(logs)} paired log-ratios, bootstrap 95% CI ({resamples} resamples, {how})")


def mann_whitney_p(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sided p-value of the Mann-Whitney U test (normal approximation with tie correction)."""
    n1, n2 = len(x), len(y)
    combined = np.concatenate([x, y])
    _, inverse, counts = np.unique(combined, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[inverse]  # tied values share their average rank
    u = ranks[:n1].sum() - n1 * (n1 + 1) / 2
    n = n1 + n2
    variance = n1 * n2 / 12 * ((n + 1) - (counts ** 3 - counts).sum() / (n * (n - 1)))
    if variance <= 0:
        return 1.0
    z = (abs(u - n1 * n2 / 2) - 0.5) / math.sqrt(variance)
    return max(0.0, min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2))))


def unpaired_change(baseline: list[float], candidate: list[float], resamples: int = 2000, seed: int = 0) -> Estimate:
    """Ratio of medians (candidate / baseline) with a bootstrap 95% CI (each side resampled on
    its own), and the Mann-Whitney p-value that the two come from one distribution."""
    a, b = np.asarray(baseline, dtype=float), np.asarray(candidate, dtype=float)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("each side needs two or more samples")
    rng = np.random.default_rng(seed)
    med_a = np.median(a[rng.integers(0, len(a), size=(resamples, len(a)))], axis=1)
    med_b = np.median(b[rng.integers(0, len(b), size=(resamples, len(b)))], axis=1)
    low, high = np.percentile(med_b / med_a, [2.5, 97.5])
    return Estimate(float(np.median(b) / np.median(a)) - 1, float(low) - 1, float(high) - 1, min(len(a), len(b)),
                    f"ratio of medians ({len(a)} vs {len(b)} samples), bootstrap 95% CI ({resamples} resamples), "
                    "Mann-Whitney U", p_value=mann_whitney_p(a, b))


def verdict(estimate: Estimate, thresholds: Thresholds) -> tuple[str, str]:
    """(verdict, why) for an estimate under the thresholds."""
    t, e = thresholds, estimate
    shown = f"{e.change:+.1%} (95% CI {e.ci_low:+.1%} to {e.ci_high:+.1%})"
    if e.change > t.fail_above and e.ci_low > t.ci_above:
        return "fail", f"{shown}: slower by more than {t.fail_above:.0%}, and surely by more than {t.ci_above:.0%}"
    if e.change < -t.fail_above and e.ci_high < -t.ci_above:
        return "improved", f"{shown}: faster by more than {t.fail_above:.0%}"
    if e.ci_high < t.pass_below:
        return "pass", f"{shown}: any slowdown is below {t.pass_below:.0%}"
    return "inconclusive", (f"{shown}: the CI reaches {e.ci_high:+.1%}, so a slowdown above {t.pass_below:.0%} "
                            f"cannot be ruled out; it is {e.ci_high - e.ci_low:.1%} wide (too noisy: more pairs, "
                            "a longer --block or a quieter machine)")

"""Ratios between two sets of timings, each with a bootstrap 95% CI: paired (per-round or
per-pair values taken next to each other, as the median of their log-ratios) and unpaired (a
ratio of medians of two sets taken apart, with a rank test). The gate, ``compare``, the
sweep's speedups and the hardware report all take theirs from here.

A change is candidate / baseline - 1: +5% means the candidate is 5% slower.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from .stats import cluster_bootstrap_medians

RESAMPLES = 2000


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
                  resamples: int = RESAMPLES, seed: int = 0) -> Estimate:
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


def unpaired_change(baseline: list[float], candidate: list[float], resamples: int = RESAMPLES,
                    seed: int = 0) -> Estimate:
    """Ratio of medians (candidate / baseline) with a bootstrap 95% CI (each side resampled on
    its own), and the Mann-Whitney p-value that the two come from one distribution."""
    a, b = np.asarray(baseline, dtype=float), np.asarray(candidate, dtype=float)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("each side needs two or more samples")
    rng = np.random.default_rng(seed)
    med_a = np.median(a[rng.integers(0, len(a), size=(resamples, len(a)))], axis=1)
    med_b = np.median(b[rng.integers(0, len(b), size=(resamples, len(b)))], axis=1)
    low, high = (float(x) for x in np.percentile(med_b / med_a, [2.5, 97.5]))
    return Estimate(float(np.median(b) / np.median(a)) - 1, low - 1, high - 1, min(len(a), len(b)),
                    f"ratio of medians ({len(a)} vs {len(b)} samples), bootstrap 95% CI ({resamples} resamples), "
                    "Mann-Whitney U", p_value=mann_whitney_p(a, b))


def _ratio_ci(numerator: list[np.ndarray], denominator: list[np.ndarray], resamples: int,
              rng: np.random.Generator) -> tuple[float, float]:
    """The 95% CI of median(numerator) / median(denominator), each side a list of clusters
    (rounds; one cluster when they are not known) resampled on its own in two stages."""
    tops = cluster_bootstrap_medians(numerator, resamples, rng)
    bottoms = cluster_bootstrap_medians(denominator, resamples, rng)
    low, high = np.percentile(tops / bottoms, [2.5, 97.5])
    return float(low), float(high)


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float], groups: Sequence[int] | None = None,
                 resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """numerator / denominator from per-round values taken next to each other (e.g. the train
    form's round medians over the fused form's: the speedup of fusion), as the median of the
    per-round log-ratios with a bootstrap 95% CI; ``groups`` (the process lifetime of each
    round) are resampled first, so that the CI widens when lifetimes disagree."""
    estimate = paired_change(list(denominator), list(numerator), list(groups) if groups else None,
                             resamples=resamples, seed=seed)
    value, low, high = 1 + estimate.change, 1 + estimate.ci_low, 1 + estimate.ci_high
    return {"ratio": value, "ci95": [low, high], "n": estimate.n, "method": estimate.method,
            "clear": not low <= 1.0 <= high}


def _clusters(samples: Sequence[float], rounds: Sequence[int] | None) -> list[np.ndarray]:
    if not rounds or len(rounds) != len(samples):
        return [np.asarray(samples, dtype=float)]
    by_round: dict[int, list[float]] = {}
    for value, index in zip(samples, rounds):
        by_round.setdefault(index, []).append(value)
    return [np.asarray(values, dtype=float) for values in by_round.values()]


def unpaired_ratio(numerator: Sequence[float], denominator: Sequence[float],
                   numerator_rounds: Sequence[int] | None = None, denominator_rounds: Sequence[int] | None = None,
                   seed: int = 0) -> dict | None:
    """median(numerator) / median(denominator) of two sets of samples not taken side by side
    (different sweeps or machines), with a bootstrap 95% CI in which each side resamples its
    rounds, then the samples within them (each sample alone when its rounds are not known);
    None with fewer than two samples on either side."""
    if len(numerator) < 2 or len(denominator) < 2:
        return None
    low, high = _ratio_ci(_clusters(numerator, numerator_rounds), _clusters(denominator, denominator_rounds),
                          RESAMPLES, np.random.default_rng(seed))
    rounds_known = bool(numerator_rounds and denominator_rounds)
    return {"ratio": float(np.median(numerator) / np.median(denominator)), "ci95": [float(low), float(high)],
            "n": min(len(numerator), len(denominator)),
            "method": f"ratio of medians, bootstrap 95% CI ({RESAMPLES} resamples"
                      + (", rounds then samples on each side)" if rounds_known else ", samples on each side)"),
            "clear": not low <= 1.0 <= high}

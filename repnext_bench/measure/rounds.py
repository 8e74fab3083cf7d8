"""Statistics of samples gathered in interleaved rounds: the latency of one case with a CI that
knows rounds differ, and ratios between cases measured next to each other in each round.

Samples of one round come from one stretch of a few milliseconds on one process: they share
that moment's machine speed and that process's offsets, so they are not independent of each
other. The CI of the median therefore comes from a two-stage bootstrap: resample the rounds,
then the samples within each drawn round (as the gate does with its pairs).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .stats import cluster_bootstrap_medians, summarize

RESAMPLES = 2000


def rounds_ci(blocks: Sequence[Sequence[float]], resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """95% CI of the median of all samples, by resampling rounds, then samples within them."""
    clusters = [np.asarray(b, dtype=float) for b in blocks if len(b)]
    rng = np.random.default_rng(seed)
    medians = cluster_bootstrap_medians(clusters, resamples, rng)
    low, high = np.percentile(medians, [2.5, 97.5])
    return float(low), float(high)


def summarize_rounds(blocks: Sequence[Sequence[float]], seed: int = 0,
                     ci: tuple[float, float] | None = None) -> dict:
    """The usual statistics over every sample, the median of each round, and (with two or more
    rounds) the CI of the median from the rounds bootstrap (``ci`` when already computed, with
    the same seed) in place of the order-statistics one."""
    samples = [s for block in blocks for s in block]
    stats = summarize(samples)
    stats["round_medians"] = [float(np.median(b)) for b in blocks if len(b)]
    stats["rounds"] = len(stats["round_medians"])
    if stats["rounds"] >= 2:
        stats["ci95_median"] = list(ci or rounds_ci(blocks, seed=seed))
        stats["ci95_method"] = f"bootstrap: rounds, then samples within them ({RESAMPLES} resamples)"
    else:
        stats["ci95_method"] = "order statistics of the median (one round)"
    low, high = stats["ci95_median"]
    stats["ci95_half_width"] = (high - low) / 2 / stats["p50"] if stats["p50"] > 0 else math.inf
    return stats


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float], groups: Sequence[int] | None = None,
                 resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """numerator / denominator from per-round values taken next to each other (e.g. the train
    form's round medians over the fused form's: the speedup of fusion), as the median of the
    per-round log-ratios with a bootstrap 95% CI; ``groups`` (the process lifetime of each
    round) are resampled first, so that the CI widens when lifetimes disagree."""
    from ..gate.stats import paired_change

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
    rng = np.random.default_rng(seed)
    tops = cluster_bootstrap_medians(_clusters(numerator, numerator_rounds), RESAMPLES, rng)
    bottoms = cluster_bootstrap_medians(_clusters(denominator, denominator_rounds), RESAMPLES, rng)
    low, high = np.percentile(tops / bottoms, [2.5, 97.5])
    rounds_known = bool(numerator_rounds and denominator_rounds)
    return {"ratio": float(np.median(numerator) / np.median(denominator)), "ci95": [float(low), float(high)],
            "n": min(len(numerator), len(denominator)),
            "method": f"ratio of medians, bootstrap 95% CI ({RESAMPLES} resamples"
                      + (", rounds then samples on each side)" if rounds_known else ", samples on each side)"),
            "clear": not low <= 1.0 <= high}

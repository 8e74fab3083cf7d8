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

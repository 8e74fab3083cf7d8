"""Statistics of latency samples, in the units they are given in."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

PERCENTILE_METHOD = "linear interpolation between order statistics (Hyndman-Fan type 7, numpy 'linear')"
NOISY_IQR_RATIO = 0.10  # a case whose IQR exceeds 10% of its median is flagged noisy
_Z95 = 1.959963984540054


def quantile_ci95(sorted_samples: np.ndarray, q: float) -> tuple[float, float]:
    """Distribution-free 95% confidence interval of the ``q`` quantile, from order statistics.

    The ranks are nq -+ 1.96 sqrt(nq(1-q)) (normal approximation to the binomial), widened
    to the nearest order statistics; with very few samples it is the whole range. It assumes
    independent samples.
    """
    n = len(sorted_samples)
    half_width = _Z95 * math.sqrt(n * q * (1 - q))
    low = max(0, math.floor(n * q - half_width) - 1)
    high = min(n - 1, math.ceil(n * q + half_width))
    return float(sorted_samples[low]), float(sorted_samples[high])


def median_ci95(sorted_samples: np.ndarray) -> tuple[float, float]:
    """Distribution-free 95% confidence interval of the median (:func:`quantile_ci95` at 0.5)."""
    return quantile_ci95(sorted_samples, 0.5)


def summarize(samples: Sequence[float]) -> dict:
    """n, min, p50, mean, p90, p95, p99, max, std, cv, iqr, the 95% CI of the median, and a noise flag."""
    if len(samples) == 0:
        raise ValueError("no samples to summarize")
    data = np.sort(np.asarray(samples, dtype=np.float64))
    p25, p50, p75, p90, p95, p99 = np.percentile(data, [25, 50, 75, 90, 95, 99], method="linear")
    mean = float(data.mean())
    std = float(data.std(ddof=1)) if len(data) > 1 else 0.0
    iqr = float(p75 - p25)
    low, high = median_ci95(data)
    return {
        "n": int(len(data)),
        "min": float(data[0]),
        "p50": float(p50),
        "mean": mean,
        "p90": float(p90),
        "p95": float(p95),
        "p99": float(p99),
        "max": float(data[-1]),
        "std": std,
        "cv": std / mean if mean > 0 else 0.0,
        "iqr": iqr,
        "ci95_median": [low, high],
        "percentile_method": PERCENTILE_METHOD,
        "noisy": bool(p50 > 0 and iqr / p50 > NOISY_IQR_RATIO),
    }


def cluster_bootstrap_medians(clusters: list[np.ndarray], resamples: int, rng: np.random.Generator,
                              chunk: int = 256) -> np.ndarray:
    """Medians of ``resamples`` two-stage bootstrap samples: draw as many clusters as there are,
    with replacement, then within each drawn cluster as many values as it has. Vectorised: the
    clusters are padded to one width with NaN, which sorts last and is left out of each median;
    ``chunk`` resamples at a time bound the memory."""
    sizes = np.array([len(c) for c in clusters])
    width = int(sizes.max())
    padded = np.full((len(clusters), width), np.nan)
    for row, values in zip(padded, clusters):
        row[:len(values)] = values
    medians = np.empty(resamples)
    for first in range(0, resamples, chunk):
        count = min(chunk, resamples - first)
        chosen = rng.integers(0, len(clusters), size=(count, len(clusters)))
        chosen_sizes = sizes[chosen][..., None]  # (count, clusters, 1)
        picks = (rng.random((count, len(clusters), width)) * chosen_sizes).astype(np.intp)
        drawn = np.where(np.arange(width) < chosen_sizes, padded[chosen[..., None], picks], np.nan)
        drawn = np.sort(drawn.reshape(count, -1), axis=1)
        counts = chosen_sizes.sum(axis=1)[:, 0]
        rows = np.arange(count)
        medians[first:first + count] = (drawn[rows, (counts - 1) // 2] + drawn[rows, counts // 2]) / 2
    return medians

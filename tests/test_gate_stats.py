"""The verdict statistics against synthetic samples with known shifts (no timing)."""
import math

import numpy as np
import pytest

from repnext_bench.gate.stats import Thresholds, verdict
from repnext_bench.measure.ratios import mann_whitney_p, paired_change, unpaired_change


def synthetic_pairs(shift: float, noise: float, pairs: int = 50, seed: int = 0, round_noise: float = 0.0,
                    rounds: int = 5):
    """Baseline and candidate block times: a common drift, per-sample noise, a per-round offset
    of the candidate process, and the true ``shift``."""
    rng = np.random.default_rng(seed)
    drift = np.exp(rng.normal(0, 0.05, pairs))  # the machine speeds up and slows down for both
    groups = np.arange(pairs) * rounds // pairs
    offsets = np.exp(rng.normal(0, round_noise, rounds))[groups]
    baseline = 5.0 * drift * np.exp(rng.normal(0, noise, pairs))
    candidate = 5.0 * (1 + shift) * drift * offsets * np.exp(rng.normal(0, noise, pairs))
    return list(baseline), list(candidate), list(groups)


def gate_verdict(shift, noise, seed, **kwargs):
    baseline, candidate, groups = synthetic_pairs(shift, noise, seed=seed, **kwargs)
    return verdict(paired_change(baseline, candidate, groups, resamples=500, seed=seed), Thresholds())[0]


def test_known_shift_is_estimated_within_its_ci():
    baseline, candidate, groups = synthetic_pairs(0.05, 0.02)
    estimate = paired_change(baseline, candidate, groups)
    assert estimate.ci_low < 0.05 < estimate.ci_high
    assert estimate.change == pytest.approx(0.05, abs=0.01) and estimate.n == 50


def test_no_false_alarms_on_a_and_a():
    verdicts = [gate_verdict(0.0, 0.02, seed) for seed in range(200)]
    assert verdicts.count("fail") == 0 and verdicts.count("improved") == 0
    assert verdicts.count("pass") >= 190


@pytest.mark.parametrize("shift,minimum", [(0.05, 0.9), (0.10, 1.0)])
def test_power_against_known_slowdowns(shift, minimum):
    verdicts = [gate_verdict(shift, 0.02, seed) for seed in range(100)]
    assert verdicts.count("fail") >= minimum * 100


def test_improvement_and_inconclusive():
    assert gate_verdict(-0.08, 0.02, 1) == "improved"
    ratios = [0.25, -0.2, 0.22, -0.18, 0.3, -0.15, 0.2, -0.1]  # log-ratios all over the place
    outcome, why = verdict(paired_change([1.0] * 8, list(np.exp(ratios))), Thresholds())
    assert outcome == "inconclusive" and "cannot be ruled out" in why and "too noisy" in why


def test_rounds_that_disagree_widen_the_ci():
    baseline, candidate, groups = synthetic_pairs(0.0, 0.005, round_noise=0.05)
    clustered = paired_change(baseline, candidate, groups)
    naive = paired_change(baseline, candidate)
    assert clustered.ci_high - clustered.ci_low > 1.2 * (naive.ci_high - naive.ci_low)


def test_mann_whitney_against_a_hand_computed_value():
    # U = 0, mean 4.5, variance 3*3*7/12 = 5.25, z = (4.5 - 0.5) / sqrt(5.25)
    expected = math.erfc((4.0 / math.sqrt(5.25)) / math.sqrt(2))
    assert mann_whitney_p(np.array([1.0, 2, 3]), np.array([4.0, 5, 6])) == pytest.approx(expected)
    assert mann_whitney_p(np.array([1.0, 1, 1]), np.array([1.0, 1, 1])) == 1.0


def test_unpaired_change_ratio_of_medians():
    rng = np.random.default_rng(3)
    base = list(10 * np.exp(rng.normal(0, 0.02, 200)))
    slower = list(11 * np.exp(rng.normal(0, 0.02, 200)))
    estimate = unpaired_change(base, slower)
    assert estimate.change == pytest.approx(0.10, abs=0.01) and estimate.ci_low > 0.08
    assert estimate.p_value < 1e-6
    same = unpaired_change(base, list(10 * np.exp(rng.normal(0, 0.02, 200))))
    assert same.ci_low < 0 < same.ci_high and same.p_value > 0.01


def test_thresholds_must_be_ordered():
    with pytest.raises(ValueError):
        Thresholds(fail_above=0.03, ci_above=0.05, pass_below=0.05)
    with pytest.raises(ValueError):
        paired_change([1.0, 2.0], [1.0])


def test_vectorised_cluster_bootstrap_matches_the_two_stage_loop():
    """The padded, vectorised resampling draws from the same distribution as the plain loop
    (rounds, then pairs within each drawn round), with clusters of unequal size."""
    from repnext_bench.measure.stats import cluster_bootstrap_medians

    rng = np.random.default_rng(5)
    clusters = [rng.normal(mu, 0.02, size) for mu, size in ((0.0, 7), (0.03, 12), (-0.02, 9), (0.01, 10))]
    vectorised = cluster_bootstrap_medians(clusters, 4000, np.random.default_rng(1))
    loop_rng = np.random.default_rng(2)
    looped = []
    for _ in range(4000):
        drawn = [clusters[c] for c in loop_rng.integers(0, len(clusters), size=len(clusters))]
        looped.append(np.median(np.concatenate([d[loop_rng.integers(0, len(d), size=len(d))] for d in drawn])))
    assert np.isfinite(vectorised).all() and len(vectorised) == 4000
    assert vectorised.mean() == pytest.approx(np.mean(looped), abs=0.002)
    assert vectorised.std() == pytest.approx(np.std(looped), rel=0.1)
    assert np.percentile(vectorised, [2.5, 97.5]) == pytest.approx(np.percentile(looped, [2.5, 97.5]), abs=0.004)
    one = cluster_bootstrap_medians([np.array([1.0, 2, 3]), np.array([5.0])], 50, np.random.default_rng(0))
    assert set(np.round(one, 6)) <= {1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 4.0, 3.5}  # medians of real draws only


def test_mann_whitney_averages_tied_ranks():
    # ranks of [1, 2, 2, 3 | 2, 4]: 1, 3, 3, 5, 3, 6 -> U = (1 + 3 + 3 + 5) - 10 = 2
    x, y = np.array([1.0, 2, 2, 3]), np.array([2.0, 4])
    n1, n2, n = 4, 2, 6
    variance = n1 * n2 / 12 * ((n + 1) - (3**3 - 3) / (n * (n - 1)))
    expected = math.erfc(((abs(2 - n1 * n2 / 2) - 0.5) / math.sqrt(variance)) / math.sqrt(2))
    assert mann_whitney_p(x, y) == pytest.approx(expected)

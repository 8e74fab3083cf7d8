"""Statistics and the timing loop against known data (no real timing asserted)."""
import itertools

import numpy as np
import pytest

from repnext_bench.measure.stats import median_ci95, summarize
from repnext_bench.measure.timing import TimingPlan, measure, warm_up


def test_summary_of_1_to_100():
    s = summarize(list(range(1, 101)))
    assert s["n"] == 100 and s["min"] == 1 and s["max"] == 100
    assert s["p50"] == 50.5 and s["mean"] == 50.5
    assert s["p90"] == pytest.approx(90.1) and s["p95"] == pytest.approx(95.05) and s["p99"] == pytest.approx(99.01)
    assert s["std"] == pytest.approx(29.011491975882016)  # sample standard deviation
    assert s["cv"] == pytest.approx(29.011491975882016 / 50.5)
    assert s["iqr"] == pytest.approx(75.25 - 25.75)
    low, high = s["ci95_median"]
    assert low <= 50.5 <= high and (low, high) == (40.0, 61.0)
    assert "type 7" in s["percentile_method"]
    assert s["noisy"] is True  # IQR is 98% of the median


def test_order_does_not_matter_and_steady_data_is_not_noisy():
    data = [10.0, 10.2, 9.9, 10.1, 10.0, 9.8, 10.3, 10.0]
    assert summarize(data) == summarize(sorted(data))
    assert summarize(data)["noisy"] is False
    assert summarize([5.0] * 20)["cv"] == 0 and summarize([5.0] * 20)["iqr"] == 0


def test_noise_flag_threshold():
    base = np.full(100, 10.0)
    base[:30], base[70:] = 9.4, 10.6  # IQR 1.2 = 12% of the median
    assert summarize(base)["noisy"] is True
    base[:30], base[70:] = 9.6, 10.4  # IQR 0.8 = 8%
    assert summarize(base)["noisy"] is False


def test_median_ci_covers_the_true_median_about_95_percent():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(2000):
        low, high = median_ci95(np.sort(rng.exponential(size=41)))
        hits += low <= np.log(2) <= high
    assert 0.93 <= hits / 2000 <= 0.99


def test_single_and_empty_samples():
    one = summarize([3.0])
    assert one["n"] == 1 and one["p50"] == 3.0 and one["std"] == 0 and one["ci95_median"] == [3.0, 3.0]
    with pytest.raises(ValueError):
        summarize([])


def counter():
    calls = itertools.count()
    return lambda: next(calls), calls


def test_measure_stops_at_min_iters_when_duration_is_met():
    run, calls = counter()
    samples, wall = measure(run, TimingPlan(min_duration_s=0, min_iters=37))
    assert len(samples) == 37 and next(calls) == 37
    assert wall >= sum(samples) / 1e3 and all(s >= 0 for s in samples)


def test_measure_runs_until_the_minimum_duration():
    run, _ = counter()
    samples, wall = measure(run, TimingPlan(min_duration_s=0.05, min_iters=3))
    assert wall >= 0.05 and len(samples) > 3


def test_measure_respects_the_hard_stop():
    import time

    samples, wall = measure(lambda: time.sleep(0.02), TimingPlan(min_duration_s=0, min_iters=10**6, max_duration_s=0.1))
    assert 1 <= len(samples) < 20 and wall < 1


def test_warm_up_needs_both_time_and_count():
    run, calls = counter()
    assert len(warm_up(run, TimingPlan(warmup_s=0, warmup_iters=7))) == 7
    run, calls = counter()
    assert len(warm_up(run, TimingPlan(warmup_s=0.02, warmup_iters=1))) > 1


def test_plan_rejects_negative_limits():
    with pytest.raises(ValueError):
        TimingPlan(min_duration_s=-1)


def test_timed_runs_warms_up_then_times_each_call():
    from repnext_bench.measure.timing import timed_runs

    calls, reads = [], []
    samples = timed_runs(lambda: calls.append(1), 4, warmup=2, after=lambda: reads.append(len(calls)))
    assert len(calls) == 6 and len(samples) == 4 and all(s >= 0 for s in samples)
    assert reads == [3, 4, 5, 6]  # after each timed call, never after a warm-up call

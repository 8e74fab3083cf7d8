"""The verdict rules: the thresholds a change (candidate / baseline - 1, from
measure/ratios.py: +5% means the candidate is 5% slower) and its CI are held against."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..measure.ratios import Estimate

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

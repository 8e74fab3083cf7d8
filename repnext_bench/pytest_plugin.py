"""A pytest plugin (registered as ``repnext_bench`` in ``pytest11``): fixtures that load a
RepNeXt case into a backend, ready to time with pytest-benchmark's ``benchmark``.

    def test_m0_onnxruntime(repnext_benchmark):
        repnext_benchmark("m0", form="fused", backend="onnxruntime", resolution=224)

    def test_custom(benchmark, repnext_session):
        session = repnext_session("m2", backend="openvino", precision="bf16")
        benchmark.pedantic(session.run, rounds=50, warmup_rounds=5)

Nothing heavy is imported until a fixture is used.
"""
from __future__ import annotations

from contextlib import ExitStack

import pytest


def _open_session(resources, variant: str, form: str = "fused", backend: str = "onnxruntime", batch: int = 1,
                  resolution: int = 224, threads: int | None = None, precision: str = "fp32",
                  checkpoint: str | None = None, seed: int = 0, opset: int = 17):
    """A loaded session of the case, closed (with its export cache) when ``resources`` closes."""
    from .backends import CaseSkipped, get_backend
    from .core.cases import Case
    from .measure.timing import TimingPlan
    from .models import get_variant
    from .run.lifecycle import Settings, open_case
    from .system.machine import usable_cores

    chosen = get_variant(variant)
    runtime = get_backend(backend)
    case = Case(chosen.name, form, backend, runtime.device, precision, batch, resolution,
                threads or usable_cores(), "latency")
    reason = runtime.unsupported(case)
    if reason:
        pytest.skip(reason)
    settings = Settings(plan=TimingPlan(), opset=opset, checkpoint=checkpoint, seed=seed)
    try:
        return resources.enter_context(open_case(case, settings)).session
    except CaseSkipped as skip:
        pytest.skip(str(skip))


@pytest.fixture
def repnext_session():
    """A factory: ``repnext_session(variant, form=..., backend=..., ...)`` returns a loaded
    session whose ``run()`` is one inference on a bound input; closed after the test."""
    with ExitStack() as resources:
        yield lambda variant, **options: _open_session(resources, variant, **options)


@pytest.fixture
def repnext_benchmark(benchmark, repnext_session):
    """``repnext_benchmark(variant, **options)``: load the case and time ``run()`` with
    pytest-benchmark; the case and what actually ran go into ``extra_info``."""

    def measure(variant: str, **options):
        session = repnext_session(variant, **options)
        benchmark.extra_info.update({"variant": variant, **options, **session.describe().to_dict()})
        return benchmark(session.run)

    return measure

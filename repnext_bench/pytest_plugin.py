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

import pytest


def _open_session(variant: str, form: str = "fused", backend: str = "onnxruntime", batch: int = 1,
                  resolution: int = 224, threads: int | None = None, precision: str = "fp32",
                  checkpoint: str | None = None, seed: int = 0, opset: int = 17):
    from .backends import CaseSkipped, get_backend
    from .cases import Case
    from .machine import usable_cores
    from .measure.timing import TimingPlan
    from .models import get_variant
    from .worker import Settings, build_case_model, export_context

    chosen = get_variant(variant)
    runtime = get_backend(backend)
    case = Case(chosen.name, form, backend, runtime.device, precision, batch, resolution,
                threads or usable_cores(), "latency")
    reason = runtime.unsupported(case)
    if reason:
        pytest.skip(reason)
    settings = Settings(plan=TimingPlan(), opset=opset, checkpoint=checkpoint, seed=seed)
    model, images, _, _ = build_case_model(case, settings)
    context = export_context(model, settings)
    try:
        session = runtime.prepare(model, case, images, context)
    except CaseSkipped as skip:
        pytest.skip(str(skip))
    finally:
        context.cache.close()
    return case, session


@pytest.fixture
def repnext_session():
    """A factory: ``repnext_session(variant, form=..., backend=..., ...)`` returns a loaded
    session whose ``run()`` is one inference on a bound input; closed after the test."""
    opened = []

    def make(variant: str, **options):
        case, session = _open_session(variant, **options)
        opened.append(session)
        return session

    yield make
    for session in opened:
        session.close()


@pytest.fixture
def repnext_benchmark(benchmark, repnext_session):
    """``repnext_benchmark(variant, **options)``: load the case and time ``run()`` with
    pytest-benchmark; the case and what actually ran go into ``extra_info``."""

    def measure(variant: str, **options):
        session = repnext_session(variant, **options)
        benchmark.extra_info.update({"variant": variant, **options, **session.describe()})
        return benchmark(session.run)

    return measure

"""One case, measured in its own process: build the model, compute the reference output,
load it into the backend, cold start, warm up, measure, check parity.

The parent (sweep.py) starts this in a fresh spawned process per case, so a crash, hang or
out-of-memory in a runtime is that case's failure only.
"""
from __future__ import annotations

import ctypes
import gc
import os
import signal
import time
import traceback
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from .cases import Case
from .measure.memory import current_rss_mb, peak_rss_mb, reset_peak
from .measure.parity import parity
from .measure.stats import summarize
from .measure.timing import TimingPlan, measure, warm_up

FAULT_ENV = "REPNEXT_BENCH_FAULT"  # test hook: segfault, hang, oom, killed or error, each optionally @VARIANT


@dataclass(frozen=True)
class Settings:
    """Everything a worker needs besides its case; plain data, so it crosses the process boundary."""

    plan: TimingPlan
    opset: int = 17
    cache_dir: str | None = None
    use_cache: bool = True
    checkpoint: str | None = None
    seed: int = 0
    randomize: bool = False  # random BatchNorm statistics and biases (when no checkpoint is loaded)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Settings:
        """Fields this version does not know (from a gate arm of another version) are ignored."""
        known = {f.name for f in fields(cls)}
        plan_fields = {f.name for f in fields(TimingPlan)}
        plan = TimingPlan(**{k: v for k, v in data["plan"].items() if k in plan_fields})
        return cls(**{**{k: v for k, v in data.items() if k in known}, "plan": plan})


def _inject_fault(case: Case, model=None) -> None:
    """Fail on purpose where ``REPNEXT_BENCH_FAULT`` asks (e.g. ``segfault@M0,hang@M1``): how the
    tests prove that a crash, hang or out-of-memory costs one case and not the sweep, and
    (``corrupt``) that a wrong model is caught by the parity checks."""
    for item in filter(None, os.environ.get(FAULT_ENV, "").split(",")):
        kind, _, target = item.strip().partition("@")
        if not target or target.upper() == case.variant.upper():
            if kind == "corrupt":
                _corrupt(model)
            else:
                _fail(kind)


def _corrupt(model) -> None:
    """Scale the first conv's weights by 1.5: the kind of error a broken fusion makes."""
    import torch

    with torch.no_grad():
        next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d)).weight.mul_(1.5)


def _fail(kind: str) -> None:
    if kind == "segfault":
        ctypes.string_at(0)
    elif kind == "hang":
        time.sleep(10**6)
    elif kind == "killed":
        os.kill(os.getpid(), signal.SIGKILL)
    elif kind == "oom":  # a limit on the address space: POSIX only, as is this test hook
        import resource

        import psutil

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        used = psutil.Process().memory_info().vms
        resource.setrlimit(resource.RLIMIT_AS, (used + (256 << 20), hard))
        try:
            np.ones(1 << 32)  # 32 GiB: more than the limit and than this machine
        finally:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    elif kind == "error":
        raise RuntimeError("injected failure")


def _base_result(case: Case) -> dict:
    return {"case": case.to_dict(), "status": "failed", "error": None, "latency_ms": None, "device_latency_ms": None,
            "throughput_ips": None,
            "concurrency": None, "precision_effective": None, "parity": None, "memory": None,
            "cold_start": None, "model": None, "backend": None, "samples_ms": None}


def reference_model(variant: str, settings: Settings):
    """The train-time model with the settings' weights: a checkpoint, or the seeded random
    initialisation (with random BatchNorm statistics when ``randomize``)."""
    import torch

    from .models import create_model, load_checkpoint

    torch.manual_seed(settings.seed)
    reference = create_model(variant, "train")
    if settings.checkpoint:
        load_checkpoint(reference, settings.checkpoint)
    elif settings.randomize:
        from .models.randomize import randomize

        randomize(reference, settings.seed)
    return reference


def build_case_model(case: Case, settings: Settings):
    """(model in the case's form, input images, the PyTorch fp32 train-time output on them,
    counts of the model) for one case: what both measuring and profiling start from."""
    import torch

    from .models import convert
    from .models.counting import count

    torch.set_num_threads(case.threads)
    reference = reference_model(case.variant, settings)
    images = np.random.default_rng(settings.seed).standard_normal(
        (case.batch, 3, case.resolution, case.resolution), dtype=np.float32)
    with torch.inference_mode():
        expected = reference(torch.from_numpy(images)).numpy()
    model = convert(reference, case.form)
    del reference
    return model, images, expected, count(model, case.resolution, batch=1)


def export_context(model, settings: Settings):
    """The export cache and settings a backend prepares with; close its cache when done."""
    from .backends import PrepareContext
    from .export import ExportCache, weights_hash

    cache = ExportCache(Path(settings.cache_dir) if settings.cache_dir else None, settings.use_cache)
    return PrepareContext(cache=cache, opset=settings.opset, weights=weights_hash(model))


def measure_case(case: Case, settings: Settings) -> dict:
    from .backends import CaseSkipped, get_backend

    result = _base_result(case)
    backend = get_backend(case.backend)
    model, images, expected, counts = build_case_model(case, settings)
    result["model"] = {"params": counts.params, "macs": counts.macs, "form": model.form}
    _inject_fault(case, model)

    context = export_context(model, settings)
    cache = context.cache
    gc.collect()
    peak_reset = reset_peak()
    rss_before = current_rss_mb()
    start = time.perf_counter()
    try:
        session = backend.prepare(model, case, images, context)
    except CaseSkipped as skip:  # what was exported before the skip is still reported
        cache.close()
        artifact = context.artifact
        if artifact and skip.exported:
            result.update(artifact=artifact, cold_start={"export_s": artifact.get("export_s"),
                                                         "export_cache_hit": artifact.get("cache_hit")},
                          memory={"artifact_bytes": artifact.get("size_bytes")})
        return {**result, "status": "skipped", "error": str(skip)}
    prepare_s = time.perf_counter() - start
    rss_loaded = current_rss_mb()
    try:
        first_start = time.perf_counter_ns()
        session.run()
        first_ms = (time.perf_counter_ns() - first_start) / 1e6
        plan = settings.plan
        timer = session.device_timer  # GPU backends: CUDA events around the compute of each call
        if case.mode == "latency":
            warm_up(session.run, plan)
            if timer:
                timer.reset()
            samples, wall = measure(session.run, plan, after=timer.collect if timer else None)
            completed, concurrency = len(samples), {"streams": 1, "requests": 1}
        else:
            completed, wall, concurrency = session.throughput(plan)
            samples = []
        output = session.output()
        description = session.describe()
        gpu_memory = description.pop("gpu_memory", None)
    finally:
        session.close()
        cache.close()
    export_s = (context.artifact or {}).get("export_s", 0.0)
    result.update(
        status="ok",
        latency_ms=summarize(samples) if samples else None,
        device_latency_ms=summarize(timer.samples) if timer and timer.samples and samples else None,
        samples_ms=[round(s, 6) for s in samples],
        throughput_ips=case.batch * completed / wall,
        concurrency={**concurrency, "completed": completed, "wall_s": wall},
        precision_effective=description["precision_effective"],
        parity=parity(output, expected),
        backend=description,
        memory={
            "peak_rss_mb": peak_rss_mb(),
            "peak_scope": "from model load" if peak_reset else "whole worker",
            "rss_before_load_mb": rss_before,
            "rss_after_load_mb": rss_loaded,
            "load_added_mb": rss_loaded - rss_before,
            "artifact_bytes": (context.artifact or {}).get("size_bytes"),
            **(gpu_memory or {}),
        },
        cold_start={
            "export_s": export_s,
            "export_cache_hit": (context.artifact or {}).get("cache_hit"),
            "load_s": prepare_s - export_s,
            "first_inference_ms": first_ms,
        },
        artifact=context.artifact,
    )
    return result


def worker_main(case_data: dict, settings_data: dict, connection, job: str = "measure",
                job_args: dict | None = None) -> None:
    """Process entry point: measure (or, with ``job="profile"``, profile) one case and send
    its result record to the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    case = Case.from_dict(case_data)
    try:
        settings = Settings.from_dict(settings_data)
        if job == "profile":
            from .profiling.run import profile_case

            result = profile_case(case, settings, **(job_args or {}))
        else:
            result = measure_case(case, settings)
    except MemoryError as exc:
        result = {**_base_result(case), "error": f"out of memory ({exc or 'MemoryError'})"}
    except Exception as exc:  # the case failed; the sweep goes on
        detail = traceback.format_exc(limit=-3)
        result = {**_base_result(case), "error": f"{type(exc).__name__}: {exc}", "traceback": detail}
    connection.send(result)
    connection.close()

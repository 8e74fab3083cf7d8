"""One case's life, written once: build the model in the case's form -> compute the PyTorch
fp32 train-time reference output -> export -> prepare it in the backend -> (the caller
measures or profiles) -> close. ``run``'s case processes, ``profile``, the gate's arms and the
pytest fixtures all go through :func:`open_case`, so each of them closes the session and the
export cache on every path, a failed prepare included.
"""
from __future__ import annotations

import gc
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from ..core.cases import Case
from ..core.records import ColdStart, ModelInfo
from ..measure.memory import current_rss_mb, reset_peak
from ..measure.timing import TimingPlan
from ..quant import DEFAULT_CALIBRATION_SIZE

# test hook: segfault, hang, slow, oom, killed, error or corrupt, each optionally @VARIANT
FAULT_ENV = "REPNEXT_BENCH_FAULT"


@dataclass(frozen=True)
class Settings:
    """Everything a case needs besides itself; plain data, so it crosses process boundaries."""

    plan: TimingPlan
    opset: int = 17
    cache_dir: str | None = None
    use_cache: bool = True
    checkpoint: str | None = None
    seed: int = 0
    randomize: bool = False  # random BatchNorm statistics and biases (when no checkpoint is loaded)
    calibration: str | None = None  # INT8: a folder of calibration images (None: synthetic inputs)
    calibration_size: int = DEFAULT_CALIBRATION_SIZE  # INT8: how many calibration inputs
    eval_dir: str | None = None  # a labelled folder (one subfolder per class): top-1 and INT8 parity on it
    eval_size: int | None = None  # how many of its images, spread over it (None: all)
    class_map: str | None = None  # its class-index map, where the folder does not hold class_index.json

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Settings:
        """Fields this version does not know (from a gate arm of another version) are ignored."""
        known = {f.name for f in fields(cls)}
        plan_fields = {f.name for f in fields(TimingPlan)}
        plan = TimingPlan(**{k: v for k, v in data["plan"].items() if k in plan_fields})
        return cls(**{**{k: v for k, v in data.items() if k in known}, "plan": plan})


def reference_model(variant: str, settings: Settings):
    """The train-time model with the settings' weights: a checkpoint, or the seeded random
    initialisation (with random BatchNorm statistics when ``randomize``)."""
    import torch

    from ..models import create_model, load_checkpoint

    torch.manual_seed(settings.seed)
    reference = create_model(variant, "train")
    if settings.checkpoint:
        load_checkpoint(reference, settings.checkpoint)
    elif settings.randomize:
        from ..models.randomize import randomize

        randomize(reference, settings.seed)
    return reference


def build_case_model(case: Case, settings: Settings, cache):
    """The case's CaseState (model in the case's form, input images, the PyTorch fp32
    train-time output on them, counts, weights hash): read from ``cache`` (an ExportCache) where
    an earlier lifetime of the case kept it (case_state.py), else made and kept there."""
    import torch

    from ..models import convert
    from ..models.counting import count
    from .case_state import case_images, case_state

    torch.set_num_threads(case.threads)

    def make():
        reference = reference_model(case.variant, settings)
        with torch.inference_mode():
            expected = reference(torch.from_numpy(case_images(case, settings.seed))).numpy()
        model = convert(reference, case.form)
        del reference
        return model, expected, count(model, case.resolution, batch=1)

    return case_state(case, settings, cache, make)


def export_cache(settings: Settings):
    """The export cache the settings name (a temporary one that removes itself with ``--no-cache``)."""
    from ..export import ExportCache

    return ExportCache(Path(settings.cache_dir) if settings.cache_dir else None, settings.use_cache)


def export_context(model, settings: Settings, cache=None, weights: str | None = None):
    """The export cache and settings a backend prepares with; close its cache when done."""
    from ..backends import PrepareContext
    from ..export import weights_hash
    from ..quant.images import CalibrationSet

    calibration = CalibrationSet(settings.calibration, settings.calibration_size, settings.seed)
    return PrepareContext(cache=cache or export_cache(settings), opset=settings.opset,
                          weights=weights or weights_hash(model), calibration=calibration)


@dataclass
class LoadedCase:
    """A case prepared in its backend, with what its preparation cost."""

    case: Case
    session: object  # a backends.Session
    artifact: object  # the export.Artifact the backend made or reused, or None
    model: object
    images: np.ndarray
    expected: np.ndarray
    counts: object  # models.counting.Counts
    context: object  # backends.PrepareContext
    prepare_s: float
    first_inference_ms: float
    peak_reset: bool
    rss_before_mb: float
    rss_loaded_mb: float
    stream_sessions: list = field(default_factory=list)  # one more session per further stream
    state_reused: bool = False  # the model, reference output and counts came from the cache

    def runners(self) -> list:
        """One way to run an inference per stream of the case, to be called from that many threads."""
        if self.stream_sessions:
            return [session.threaded_run() for session in [self.session, *self.stream_sessions]]
        return self.session.runners(self.case.streams)

    def cold_start(self) -> ColdStart:
        # export_s as the artifact describes it (rounded), so that load_s + export_s = prepare_s there too
        export_s = self.artifact.describe()["export_s"] if self.artifact else 0.0
        return ColdStart(export_s=export_s, export_cache_hit=self.artifact.cache_hit if self.artifact else None,
                         load_s=self.prepare_s - export_s, first_inference_ms=self.first_inference_ms)

    def model_record(self) -> ModelInfo:
        return model_record(self.model, self.counts)


def model_record(model, counts) -> ModelInfo:
    """What a result says of the model: its counts and form."""
    return ModelInfo(params=counts.params, macs=counts.macs, form=model.form)


@contextmanager
def open_case(case: Case, settings: Settings) -> Iterator[LoadedCase]:
    """Build, export and prepare ``case``, run its first inference, and close the session and
    the export cache however the block ends. A ``CaseSkipped`` raised by the backend goes on to
    the caller with the artifact the backend set on it and ``model`` set here."""
    from ..backends import CaseSkipped, Prepared, get_backend

    backend = get_backend(case.backend)
    cache = export_cache(settings)
    try:
        state = build_case_model(case, settings, cache)
        model, images, expected, counts = state.model, state.images, state.expected, state.counts
        inject_fault(case, model)
    except BaseException:
        cache.close()
        raise
    # a corrupted model (the fault hook) is another model: its own weights, its own export
    context = export_context(model, settings, cache, None if os.environ.get(FAULT_ENV) else state.weights)
    try:
        gc.collect()
        peak_reset = reset_peak()
        rss_before = current_rss_mb()
        start = time.perf_counter()
        # streams of a runtime without streams of its own: a session each, the threads split
        each = case if case.streams == 1 or backend.native_streams else replace(case, threads=case.threads_per_stream)
        try:
            prepared = backend.prepare(model, each, images, context)
        except CaseSkipped as skip:
            skip.model = model_record(model, counts).to_dict()
            raise
        prepare_s = time.perf_counter() - start
        if not isinstance(prepared, Prepared):
            raise TypeError(f"{type(backend).__name__}.prepare returned {type(prepared).__name__}, not Prepared")
        session = prepared.session
        more = []
        try:
            more.extend(backend.prepare(model, each, images, context).session for _ in range(
                case.streams - 1 if each is not case else 0))
            session.make_current()  # the first session runs in this thread (the others in their own)
            rss_loaded = current_rss_mb()
            first_start = time.perf_counter_ns()
            session.run()
            first_ms = (time.perf_counter_ns() - first_start) / 1e6
            yield LoadedCase(case, session, prepared.artifact, model, images, expected, counts, context, prepare_s,
                             first_ms, peak_reset, rss_before, rss_loaded, more, state.reused)
        finally:
            for one in [session, *more]:
                one.close()
    finally:
        context.cache.close()


def inject_fault(case: Case, model=None) -> None:
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
    import ctypes
    import signal

    if kind == "segfault":
        ctypes.string_at(0)
    elif kind == "hang":
        time.sleep(10**6)
    elif kind == "slow":  # a load that takes a second longer (the budget does not count it)
        time.sleep(1.0)
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

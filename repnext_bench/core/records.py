"""The typed records of a run report: one :class:`Result` per case, and the parts it is made of.

They are written with ``to_dict`` (the JSON report contract, see
``repnext_bench/report/report.schema.json``) and read back with ``from_dict``, which checks
every field's type and says in one line what is wrong with a malformed report. Fields a record
does not have in an older report are None; fields this version does not know are ignored,
except in records with an ``extra`` field, which keep them (a backend's own facts about its
artifact, for instance) and write them back flat.
"""
from __future__ import annotations

import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from functools import cache
from typing import Any, ClassVar, Literal, Union

from .cases import Case

Status = Literal["ok", "failed", "skipped", "unavailable"]
STATUSES: tuple[Status, ...] = typing.get_args(Status)
# what a sweep tells its on_event as it goes (cli/progress.py shows each)
SweepEvent = Literal["load", "loaded", "prepared", "round", "problem", "note", "evaluate", "trial"]
SWEEP_EVENTS: tuple[SweepEvent, ...] = typing.get_args(SweepEvent)
StopReason = Literal["interrupted", "wall limit", "budget", "max rounds", "converged"]
# why a sweep's rounds stopped, the first that any of its batches met taking precedence
STOP_REASONS: tuple[StopReason, ...] = typing.get_args(StopReason)
MAX_ROUNDS = 500  # the most rounds a sweep runs, converged or not
EXPORT_INCLUDED = ", export included"  # a peak's scope when every process of the case exported first


class RecordError(ValueError):
    """A record that is not what the report contract says: one line naming the field."""


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(kind: Any) -> str:
    return getattr(kind, "__name__", str(kind))


def _convert(kind: Any, value: Any, where: str) -> Any:
    """``value`` as ``kind`` (a field's annotation), or a RecordError naming ``where``."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, where)
    if value is None:
        raise RecordError(f"{where} is missing (null); it should be {_type_name(kind)}")
    if isinstance(kind, type) and issubclass(kind, Record):
        if not isinstance(value, dict):
            raise RecordError(f"{where} should be an object, not {type(value).__name__}")
        return kind.from_dict(value, where)
    if kind is Case:
        return _case(value, where)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecordError(f"{where} should be a number, not {value!r}")
        return float(value)
    if kind in (int, str, bool):
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise RecordError(f"{where} should be {'an integer' if kind is int else _type_name(kind)}, not {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise RecordError(f"{where} should be a list, not {type(value).__name__}")
        return [_convert(args[0], item, f"{where}[{index}]") for index, item in enumerate(value)]
    if origin is dict or kind is dict:
        if not isinstance(value, dict):
            raise RecordError(f"{where} should be an object, not {type(value).__name__}")
        return dict(value)
    raise TypeError(f"no conversion for {kind!r}")  # a field annotated with a type this module does not handle


def _case(value: Any, where: str) -> Case:
    names = [f.name for f in fields(Case) if f.default is MISSING]
    if not isinstance(value, dict) or any(name not in value for name in names):
        raise RecordError(f"{where} should be a case with {', '.join(names)}")
    for name in names:
        expected = int if name in ("batch", "resolution", "threads") else str
        _convert(expected, value[name], f"{where}.{name}")
    return Case.from_dict(value)


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, Case):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


@dataclass
class Record:
    """A part of a report: typed fields, written and read as a JSON object."""

    OPEN: ClassVar[bool] = False  # keeps unknown keys in ``extra`` (declared by the record) when True
    # optional fields written as null when unset (the contract's always-present keys); the
    # other optional fields are left out when unset, as a report that predates them has them
    NULLABLE: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict:
        data = {f.name: _plain(getattr(self, f.name)) for f in fields(self)
                if f.name != "extra" and (getattr(self, f.name) is not None or f.name in self.NULLABLE
                                          or (f.default is MISSING and f.default_factory is MISSING))}
        if self.OPEN:
            data.update(self.extra)
        return data

    @classmethod
    def from_dict(cls, data: dict, where: str = "") -> Record:
        if not isinstance(data, dict):
            raise RecordError(f"{where or cls.__name__} should be an object, not {type(data).__name__}")
        hints, values = _hints(cls), {}
        known = {f.name for f in fields(cls)} - {"extra"}
        for item in fields(cls):
            if item.name == "extra":
                continue
            path = f"{where}.{item.name}" if where else item.name
            if item.name in data:
                values[item.name] = _convert(hints[item.name], data[item.name], path)
            elif item.default is MISSING and item.default_factory is MISSING:
                raise RecordError(f"{path} is missing")
        if cls.OPEN:
            values["extra"] = {k: v for k, v in data.items() if k not in known}
        try:
            return cls(**values)
        except RecordError as exc:
            raise RecordError(f"{where}: {exc}" if where else str(exc)) from None


@dataclass
class LatencyStats(Record):
    """Statistics of a case's latency samples, in milliseconds (``measure.rounds.summarize_rounds``)."""

    NULLABLE: ClassVar[tuple[str, ...]] = ("ci95_half_width",)

    n: int
    p50: float
    min: float | None = None
    mean: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None
    std: float | None = None
    cv: float | None = None
    iqr: float | None = None
    ci95_median: list[float] | None = None
    percentile_method: str | None = None
    noisy: bool | None = None
    round_medians: list[float] | None = None
    rounds: int | None = None
    ci95_method: str | None = None
    ci95_half_width: float | None = None


@dataclass
class Ratio(Record):
    """A ratio of two medians with its 95% CI; ``clear`` is False when the CI includes 1.0."""

    ratio: float
    ci95: list[float]
    clear: bool
    n: int | None = None
    method: str | None = None
    over: str | None = None  # what the ratio is over (the train-time form, for the fused speedup)


@dataclass
class Parity(Record):
    """The output against the PyTorch fp32 train-time model's on the same input."""

    rel_l2: float
    max_abs: float
    top1_agree: float
    images: int | None = None  # INT8: how many evaluation inputs it was measured on
    inputs: str | None = None  # INT8: which ("eval folder" or "synthetic")
    per_image: dict | None = None  # INT8: sq_err, sq_ref and agree per input (quant.accuracy.per_image)


@dataclass
class Quantization(Record):
    """An INT8 case: how the model was quantized, what it was calibrated on, and how many layers
    of each kind (int8, float, qdq, reorder) the runtime's execution graph ran."""

    OPEN: ClassVar[bool] = True
    method: str | None = None
    layers: dict | None = None
    scheme: str | None = None
    calibration: dict | None = None  # source (folder or synthetic), size, and the folder's hash or the seed
    extra: dict = field(default_factory=dict)


@dataclass
class Accuracy(Record):
    """Top-1 on a labelled folder (``--eval``): the case's, and the PyTorch fp32 train-time model's."""

    images: int
    top1: float
    reference_top1: float
    folder: str | None = None
    class_map: str | None = None  # how the folder names became class indices


@dataclass
class Memory(Record):
    OPEN: ClassVar[bool] = True
    NULLABLE: ClassVar[tuple[str, ...]] = ("peak_rss_mb", "peak_scope", "rss_before_load_mb", "rss_after_load_mb",
                                           "load_added_mb", "artifact_bytes")
    peak_rss_mb: float | None = None
    peak_scope: str | None = None
    rss_before_load_mb: float | None = None
    rss_after_load_mb: float | None = None
    load_added_mb: float | None = None
    artifact_bytes: int | None = None
    gpu_peak_allocated_mb: float | None = None
    gpu_peak_reserved_mb: float | None = None
    extra: dict = field(default_factory=dict)  # other memory facts of a backend (TensorRT's activation memory)


@dataclass
class ColdStart(Record):
    NULLABLE: ClassVar[tuple[str, ...]] = ("export_s", "export_cache_hit", "load_s", "first_inference_ms")
    export_s: float | None = None
    export_cache_hit: bool | None = None
    load_s: float | None = None
    first_inference_ms: float | None = None


@dataclass
class ModelInfo(Record):
    params: int
    macs: int
    form: str


@dataclass
class ArtifactRecord(Record):
    """What an export made or reused: the file, its size, its cache entry, and the exporter's
    own facts (op counts, weight precision, model format...) in ``extra``."""

    OPEN: ClassVar[bool] = True
    NULLABLE: ClassVar[tuple[str, ...]] = ("cache_key", "cache_hit", "export_s")
    path: str
    size_bytes: int
    cache_key: str | None = None
    cache_hit: bool | None = None
    export_s: float | None = None
    op_counts: dict | None = None  # node or op type -> how many (ONNX, OpenVINO IR, Core ML)
    ops_total: int | None = None
    weight_precision: str | None = None  # of the stored weights (OpenVINO IR, Core ML)
    precision: str | None = None  # what an engine was built for (TensorRT)
    model_format: str | None = None  # mlprogram or neuralnetwork (Core ML)
    extra: dict = field(default_factory=dict)


@dataclass
class Concurrency(Record):
    """How many requests were in flight: ``streams`` served at once, ``requests`` kept queued
    (OpenVINO's asynchronous queue may hold more than its streams), each stream's threads."""

    OPEN: ClassVar[bool] = True
    NULLABLE: ClassVar[tuple[str, ...]] = ("completed", "wall_s")
    streams: int
    requests: int
    completed: int | None = None
    wall_s: float | None = None
    threads_per_stream: int | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class ServerRecord(Record):
    """The server scenario: Poisson arrivals at ``qps_offered``, latency from each arrival to the
    end of its inference; with ``--p99`` the trial at the highest rate that met the bound, and
    ``search``: every trial (rate, p99...) and why the search stopped."""

    NULLABLE: ClassVar[tuple[str, ...]] = ("bound_ms", "missed")
    qps_offered: float
    qps_achieved: float
    requests: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_wait_ms: float
    bound_ms: float | None = None
    missed: int | None = None
    p99_ci_ms: list[float] | None = None  # 95% CI of the p99 (order statistics: optimistic, queued latencies correlate)
    service_p99_ms: float | None = None  # the p99 of the inferences alone, without the queue
    search: dict | None = None

    def overloaded(self, share: float = 0.85) -> bool:
        """Served clearly slower than offered: the queue grew through the trial, so its p99
        says only how long the trial was."""
        return self.qps_achieved < share * self.qps_offered


@dataclass
class RoundsInfo(Record):
    NULLABLE: ClassVar[tuple[str, ...]] = ("block_lifetimes", "inferences_per_block", "ci95_half_width", "converged")
    blocks: int
    lifetimes: int
    block_lifetimes: list[int] | None = None
    inferences_per_block: int | None = None
    ci95_half_width: float | None = None
    converged: bool | None = None


@dataclass
class Result(Record):
    """One case of a run report. Only ``case`` and ``status`` are always set; a case that was
    not measured has its ``error`` and None for every measurement."""

    case: Case
    status: str
    error: str | None = None
    traceback: str | None = None
    latency_ms: LatencyStats | None = None
    device_latency_ms: LatencyStats | None = None
    throughput_ips: float | None = None
    throughput_blocks_ips: list[float] | None = None
    concurrency: Concurrency | None = None
    precision_effective: str | None = None
    parity: Parity | None = None
    memory: Memory | None = None
    cold_start: ColdStart | None = None
    model: ModelInfo | None = None
    backend: dict | None = None  # what ran, in the backend's own terms (threads, providers, versions...)
    artifact: ArtifactRecord | None = None
    samples_ms: list[float] | None = None
    samples_round: list[int] | None = None
    rounds: RoundsInfo | None = None
    fused_speedup: Ratio | None = None
    server: ServerRecord | None = None
    best_streams: bool | None = None  # a point of the --streams auto grid: whether it is the best of its grid
    quantization: Quantization | None = None  # INT8 cases
    int8_speedup: Ratio | None = None  # INT8 cases with an fp32 twin in the sweep: fp32 over INT8, paired
    accuracy: Accuracy | None = None  # with --eval
    NULLABLE: ClassVar[tuple[str, ...]] = ("error", "latency_ms", "device_latency_ms", "throughput_ips", "concurrency",
                                           "precision_effective", "parity", "memory", "cold_start", "model",
                                           "backend", "samples_ms", "artifact")

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise RecordError(f"status {self.status!r} is not one of {', '.join(STATUSES)}")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def label(self) -> str:
        return self.case.label

    @property
    def p50_ms(self) -> float | None:
        return self.latency_ms.p50 if self.latency_ms else None

    @property
    def converged(self) -> bool | None:
        return self.rounds.converged if self.rounds else None

    @property
    def rel_l2(self) -> float | None:
        return self.parity.rel_l2 if self.parity else None

    @property
    def peak_rss_mb(self) -> float | None:
        return self.memory.peak_rss_mb if self.memory else None

    @property
    def samples(self) -> list[float]:
        return self.samples_ms or []


def read_results(data: list, where: str = "results") -> list[Result]:
    """The results of a run report, each checked, or a RecordError naming the first bad field."""
    if not isinstance(data, list):
        raise RecordError(f"{where} should be a list")
    return [Result.from_dict(item, f"{where}[{index}]") for index, item in enumerate(data)]


def as_result(item: Result | dict) -> Result:
    """A result from a report's JSON or already typed: what the readers take."""
    return item if isinstance(item, Result) else Result.from_dict(item)

"""A case is one measurement: (variant, form, backend, device, precision, batch, resolution,
threads, mode, streams). This module expands the sweep's options into cases."""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field, fields

PRECISIONS = ("fp32", "bf16", "fp16", "int8", "auto")
# latency: one request in flight; throughput: ``streams`` requests in flight, kept full;
# server: requests arriving as a Poisson process, served by ``streams`` workers
MODES = ("latency", "throughput", "server")


@dataclass(frozen=True)
class Case:
    variant: str
    form: str
    backend: str
    device: str
    precision: str
    batch: int
    resolution: int
    threads: int
    mode: str
    options: tuple[tuple[str, object], ...] = field(default=())  # backend options, e.g. channels_last
    streams: int = 1  # requests served at once (throughput and server modes), the threads split between them

    def to_dict(self) -> dict:
        data = asdict(self)
        data["options"] = dict(self.options)
        if self.streams == 1:  # as reports from before streams existed say it
            del data["streams"]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Case:
        known = {f.name for f in fields(cls)}  # unknown fields (another version's) are ignored
        values = {k: v for k, v in data.items() if k in known}
        values["options"] = tuple(sorted(dict(values.get("options") or {}).items()))
        return cls(**values)

    @property
    def option_words(self) -> list[str]:
        """The options in words: a switch that is on by its name, a choice by its value."""
        return [k if v is True else str(v) for k, v in self.options if v is not False]

    @property
    def threads_per_stream(self) -> int:
        return max(1, self.threads // self.streams)

    @property
    def label(self) -> str:
        extra = "".join(f" {word}" for word in self.option_words)
        streams = f" {self.streams}x{self.threads_per_stream}" if self.streams > 1 else ""
        return (f"{self.variant} {self.form} {self.backend}/{self.device} {self.precision} b{self.batch} "
                f"{self.resolution}px t{self.threads} {self.mode}{streams}{extra}")


def expand(
    variants: list[str],
    forms: list[str],
    backends: list[tuple[str, str]],  # (backend, device)
    precisions: list[str],
    batches: list[int],
    resolutions: list[int],
    threads: list[int],
    modes: list[str],
    backend_options: dict[str, dict[str, object] | list[dict[str, object]]] | None = None,
    streams: list[int] | None = None,
) -> list[Case]:
    """Every combination, variants outermost so that one variant's forms sit together.

    ``backend_options`` holds options per backend name (e.g. channels_last for torch), or a
    list of alternative option sets that each become cases (e.g. both Core ML formats).
    ``streams`` applies to the throughput and server modes (latency has one request in
    flight); None: one stream in server mode, and in throughput mode the grid of
    :func:`stream_grid`, whose best point the results name.
    """
    frozen = {name: [tuple(sorted(o.items())) for o in (opts if isinstance(opts, list) else [opts])]
              for name, opts in (backend_options or {}).items()}
    return [
        Case(v, f, b, d, p, n, r, t, m, o, s)
        for v, (b, d), f, p, n, r, t, m in itertools.product(
            variants, backends, forms, precisions, batches, resolutions, threads, modes
        )
        for o in frozen.get(b, [()])
        for s in streams_for(m, t, streams)
    ]


def stream_grid(threads: int) -> list[int]:
    """The streams tried by ``--streams auto`` on ``threads`` cores: 1, 2, 4... up to one stream
    per core, each stream with an equal share of the cores (so only counts that divide them)."""
    grid = [s for s in (1, 2, 4, 8, 16, 32, 64) if s <= threads and threads % s == 0]
    return list(dict.fromkeys([*grid, threads]))


def streams_for(mode: str, threads: int, chosen: list[int] | None) -> list[int]:
    if mode == "latency":
        return [1]
    if chosen is not None:
        return chosen
    return stream_grid(threads) if mode == "throughput" else [1]

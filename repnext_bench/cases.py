"""A case is one measurement: (variant, form, backend, device, precision, batch, resolution,
threads, mode). This module expands sweep options into cases and validates them."""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field, fields

PRECISIONS = ("fp32", "bf16", "fp16", "auto")
MODES = ("latency", "throughput")


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

    def to_dict(self) -> dict:
        data = asdict(self)
        data["options"] = dict(self.options)
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
    def label(self) -> str:
        extra = "".join(f" {word}" for word in self.option_words)
        return (f"{self.variant} {self.form} {self.backend}/{self.device} {self.precision} b{self.batch} "
                f"{self.resolution}px t{self.threads} {self.mode}{extra}")


def parse_int_list(text: str, name: str, *, multiple_of: int = 1) -> list[int]:
    """``"1,8,32"`` -> [1, 8, 32]; ValueError naming the option on anything else."""
    values = []
    for item in text.split(","):
        item = item.strip()
        if not item.isdigit() or int(item) <= 0 or int(item) % multiple_of:
            rule = f"positive multiples of {multiple_of}" if multiple_of > 1 else "positive integers"
            raise ValueError(f"{name} {text!r} is not valid: use {rule}, comma-separated (e.g. {name} "
                             f"{'224,256' if multiple_of > 1 else '1,8'})")
        values.append(int(item))
    return list(dict.fromkeys(values))


def parse_choices(text: str, name: str, allowed: tuple[str, ...]) -> list[str]:
    """``"train,fused"`` -> ["train", "fused"], each checked against ``allowed``."""
    chosen = [item.strip().lower() for item in text.split(",")]
    bad = [item for item in chosen if item not in allowed]
    if bad or not chosen:
        raise ValueError(f"{name} {text!r} is not valid: choose from {', '.join(allowed)} (comma-separated)")
    return list(dict.fromkeys(chosen))


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
) -> list[Case]:
    """Every combination, variants outermost so that one variant's forms sit together.

    ``backend_options`` holds options per backend name (e.g. channels_last for torch), or a
    list of alternative option sets that each become cases (e.g. both Core ML formats).
    """
    frozen = {name: [tuple(sorted(o.items())) for o in (opts if isinstance(opts, list) else [opts])]
              for name, opts in (backend_options or {}).items()}
    return [
        Case(v, f, b, d, p, n, r, t, m, o)
        for v, (b, d), f, p, n, r, t, m in itertools.product(
            variants, backends, forms, precisions, batches, resolutions, threads, modes
        )
        for o in frozen.get(b, [()])
    ]

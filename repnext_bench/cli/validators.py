"""One validator per kind of value the commands take. Each turns the option's text into a value
or raises a one-line usage error that names the option; the rule for a kind (a resolution, a
percentage, a positive integer) lives here once and every command uses it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..system.machine import usable_cores
from .common import UsageProblem


@dataclass(frozen=True)
class WholeNumber:
    """A kind of positive whole number, a multiple of ``step``: one value, or a comma-separated list."""

    rule: str  # what one value must be, e.g. "a positive integer"
    rule_many: str  # the same for a list, e.g. "positive integers"
    example: str
    example_many: str
    step: int = 1

    def _valid(self, item: str) -> bool:
        return item.isdigit() and int(item) > 0 and int(item) % self.step == 0

    def one(self, text: str | int, option: str) -> int:
        """One value (an int from typer, or text)."""
        item = str(text).strip()
        if not self._valid(item):
            raise UsageProblem(f"{option} {text!r} is not valid: use {self.rule}, e.g. {self.example}")
        return int(item)

    def many(self, text: str, option: str) -> list[int]:
        """``"1,8,32"`` -> [1, 8, 32], repeats dropped."""
        items = [item.strip() for item in text.split(",")]
        if not all(self._valid(item) for item in items):
            raise UsageProblem(f"{option} {text!r} is not valid: use {self.rule_many}, comma-separated "
                               f"(e.g. {option} {self.example_many})")
        return list(dict.fromkeys(int(item) for item in items))


POSITIVE = WholeNumber("a positive integer", "positive integers", "1", "1,8")
# the network downsamples by 32: any other side leaves a ragged last stage
RESOLUTION = WholeNumber("a positive multiple of 32 (the network downsamples by 32)", "positive multiples of 32",
                         "224", "224,256", step=32)


def resolution(text: str | int, option: str = "--resolution") -> int:
    return RESOLUTION.one(text, option)


def resolutions(text: str, option: str = "--resolution") -> list[int]:
    return RESOLUTION.many(text, option)


def positive(text: str | int, option: str) -> int:
    return POSITIVE.one(text, option)


def positives(text: str, option: str) -> list[int]:
    return POSITIVE.many(text, option)


def threads(text: str, option: str = "--threads") -> int:
    """One thread count; empty: the usable cores."""
    return positive(text, option) if str(text).strip() else usable_cores()


def thread_list(text: str, option: str = "--threads") -> list[int]:
    """Thread counts to sweep; empty: the usable cores."""
    return positives(text, option) if text.strip() else [usable_cores()]


def percent(text: str, option: str) -> float:
    """``"5"`` or ``"5%"`` -> 0.05, or a usage error naming the option."""
    try:
        value = float(text.strip().rstrip("%"))
    except ValueError:
        raise UsageProblem(f"{option} {text!r} is not a percentage (e.g. 5 or 5%)") from None
    return value / 100


def choices(text: str, option: str, allowed: tuple[str, ...]) -> list[str]:
    """``"train,fused"`` -> ["train", "fused"], each one of ``allowed`` (case-insensitive)."""
    chosen = list(dict.fromkeys(item.strip().lower() for item in text.split(",")))
    if any(item not in allowed for item in chosen):
        raise UsageProblem(f"{option} {text!r} is not valid: choose from {', '.join(allowed)} (comma-separated)")
    return chosen


def choice(text: str, option: str, allowed: tuple[str, ...]) -> str:
    """One of ``allowed``; a list is a usage error."""
    chosen = choices(text, option, allowed)
    if len(chosen) != 1:
        raise UsageProblem(f"{option} {text!r}: give one of {', '.join(allowed)}, not {len(chosen)}")
    return chosen[0]


def variant_names(text: str, option: str = "--variants") -> list[str]:
    """A variant selector (``m0-m5``, ``all``...) -> names."""
    from ..models import VariantError, parse_variants

    try:
        return [v.name for v in parse_variants(text)]
    except VariantError as exc:
        raise UsageProblem(f"{option}: {exc}") from exc


def one_variant(text: str) -> str:
    chosen = variant_names(text)
    if len(chosen) != 1:
        raise UsageProblem(f"--variant takes one variant, not {len(chosen)} ({text!r}); e.g. --variant m4")
    return chosen[0]


def forms(text: str, option: str = "--forms") -> list[str]:
    from ..models import FORMS

    return choices(text, option, FORMS)


def precisions(text: str, option: str = "--precision") -> list[str]:
    from ..core.cases import PRECISIONS

    return choices(text, option, PRECISIONS)


def precision(text: str, option: str = "--precision") -> str:
    from ..core.cases import PRECISIONS

    return choice(text, option, PRECISIONS)


def opset(value: str | int, option: str = "--opset") -> int:
    """An ONNX opset this torch exports (torch is asked only above the default opset)."""
    from ..export import opset_problem

    number = positive(value, option) if isinstance(value, str) else value
    problem = opset_problem(number)
    if problem:
        raise UsageProblem(problem.replace("--opset", option, 1))
    return number


def backends(text: str, devices: str = "") -> list[tuple[str, str]]:
    """``--backend`` (and ``--device``) -> (backend, device) pairs. Without ``--device`` each
    backend runs on its default device; with it, each backend takes the listed devices it
    supports, and a backend that supports none of them (or a device no backend takes) is an error."""
    from ..backends import backend_names, get_backend

    chosen = [get_backend(name) for name in choices(text, "--backend", tuple(backend_names()))]
    if not devices:
        return [(backend.name, backend.device) for backend in chosen]
    known = tuple(dict.fromkeys(d for backend in chosen for d in backend.devices))
    wanted = choices(devices, "--device", known)
    pairs = []
    for backend in chosen:
        mine = [d for d in wanted if d in backend.devices]
        if not mine:
            raise UsageProblem(f"--device {devices}: {backend.name} runs on {', '.join(backend.devices)}")
        pairs.extend((backend.name, d) for d in mine)
    return pairs


def at_least(value: float, floor: float, option: str, *, strictly: bool = False) -> float:
    """A number of seconds (or the like) at or above ``floor`` (above it, ``strictly``)."""
    if value < floor or (strictly and value == floor):
        raise UsageProblem(f"{option} {value:g} is not valid: use a value {'above' if strictly else 'of at least'} "
                           f"{floor:g}")
    return value


def streams(text: str, option: str = "--streams") -> list[int] | None:
    """``auto`` (None: the grid of cases.stream_grid in throughput mode, one stream in server
    mode) or stream counts to sweep."""
    return None if text.strip().lower() == "auto" else positives(text, option)


def milliseconds(text: str, option: str) -> float:
    """``10ms``, ``10`` (milliseconds) or ``0.01s`` -> 10.0, above 0."""
    item = text.strip().lower()
    scale = 1e3 if item.endswith("s") and not item.endswith("ms") else 1.0
    try:
        value = float(item.removesuffix("ms").removesuffix("s")) * scale
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise UsageProblem(f"{option} {text!r} is not valid: use a time above 0, e.g. 10ms, 10 (milliseconds) or 0.01s")
    return value


def coreml_weights(text: str | None, precisions: list[str]) -> list[str] | bool:
    """``--coreml-weights``: the Core ML INT8 weight compressions to run (False when not given:
    no such case option, linear being what int8 means)."""
    if text is None:
        return False
    if "int8" not in precisions:
        raise UsageProblem("--coreml-weights applies to --precision int8")
    from ..export.coreml import COMPRESSIONS

    return choices(text, "--coreml-weights", COMPRESSIONS)


def quantization_settings(precisions: list[str], calibration: Path | None, calibration_size: int,
                          eval_dir: Path | None = None, class_map: Path | None = None, eval_size: int | None = None,
                          checkpoint: Path | None = None) -> dict:
    """The Settings fields of --calibration, --calibration-size, --eval, --class-map and
    --eval-size, the folders read now (one line for one that cannot be used), not case by case;
    a note on stderr for what is allowed but worth knowing."""
    from ..quant.images import ImageFolderError, check_calibration, eval_set
    from .common import err_console

    if calibration is not None and "int8" not in precisions:
        raise UsageProblem("--calibration applies to --precision int8")
    if (class_map is not None or eval_size is not None) and eval_dir is None:
        raise UsageProblem(f"{'--class-map' if class_map is not None else '--eval-size'} applies to --eval")
    for value, option in ((calibration_size, "--calibration-size"), (eval_size, "--eval-size")):
        if value is not None and value < 1:
            raise UsageProblem(f"{option} {value} is not valid: use 1 or more")
    try:
        found, note = check_calibration(calibration, calibration_size)
    except ImageFolderError as exc:
        raise UsageProblem(f"--calibration: {exc}") from None
    try:
        if eval_dir is not None:
            eval_set(eval_dir, class_map, eval_size)
    except ImageFolderError as exc:
        raise UsageProblem(f"--eval: {exc}") from None
    if eval_dir is not None and checkpoint is None:
        note = "; ".join(filter(None, [note, "--eval without --checkpoint: random weights, so top-1 is chance "
                                             "level; the parity on its images still holds"]))
    if note:
        err_console.print(f"[yellow]note:[/] {note}", highlight=False)
    return {"calibration": found.folder, "calibration_size": calibration_size,
            "eval_dir": str(eval_dir.resolve()) if eval_dir else None, "eval_size": eval_size,
            "class_map": str(class_map.resolve()) if class_map else None}

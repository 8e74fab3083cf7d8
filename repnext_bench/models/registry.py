"""The RepNeXt variants, read from the data files in ``variants/``, and the selector parser."""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

TOKEN_MIXERS = ("repnext", "e")
# train-time (multi-branch), official (branches merged, BatchNorms kept), fused (one conv per layer)
FORMS: tuple[str, ...] = ("train", "official", "fused")


class VariantError(ValueError):
    """A variant name, selector or variant file is not valid."""


@dataclass(frozen=True)
class PaperFigures:
    """The reference figures the paper reports for the fused model at 224x224."""

    params_m: float
    macs_g: float
    iphone12_latency_ms: float
    top1_distilled: float
    top1_plain: float
    training_recipe: str


@dataclass(frozen=True)
class Variant:
    name: str
    embed_dims: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    token_mixer: str
    mlp_ratio: int
    paper: PaperFigures

    @property
    def family(self) -> str:
        """Variants form two ranges that a selector may span: plain (M0-M5) and E (M0E-M2E)."""
        return "E" if self.name.endswith("E") else "plain"

    @property
    def index(self) -> int:
        return int(re.sub(r"\D", "", self.name))


def variants_dir() -> Path:
    """Where the variant files are: inside the installed package, or at the top of a checkout."""
    package_root = Path(__file__).resolve().parent.parent
    for candidate in (package_root / "variants", package_root.parent / "variants"):
        if candidate.is_dir():
            return candidate
    raise VariantError(f"no variants/ folder found beside {package_root}: the installation is incomplete")


def _read_variant(path: Path) -> Variant:
    try:
        data = tomllib.loads(path.read_text())
        paper = data["paper"]
        variant = Variant(
            name=str(data["name"]),
            embed_dims=tuple(int(d) for d in data["embed_dims"]),
            depths=tuple(int(d) for d in data["depths"]),
            token_mixer=str(data["token_mixer"]),
            mlp_ratio=int(data["mlp_ratio"]),
            paper=PaperFigures(
                params_m=float(paper["params_m"]),
                macs_g=float(paper["macs_g"]),
                iphone12_latency_ms=float(paper["iphone12_latency_ms"]),
                top1_distilled=float(paper["top1_distilled"]),
                top1_plain=float(paper["top1_plain"]),
                training_recipe=str(paper["training_recipe"]),
            ),
        )
    except (KeyError, TypeError, ValueError, tomllib.TOMLDecodeError) as exc:
        raise VariantError(f"{path}: not a valid variant file ({type(exc).__name__}: {exc})") from exc
    problems = []
    if len(variant.embed_dims) != 4 or len(variant.depths) != 4:
        problems.append("embed_dims and depths need 4 entries, one per stage")
    if any(d <= 0 or d % 4 for d in variant.embed_dims):
        problems.append("every embed dim must be a positive multiple of 4 (the token mixer splits it in 4)")
    if any(b - 2 * a for a, b in zip(variant.embed_dims, variant.embed_dims[1:])):
        problems.append("each stage must have twice the channels of the one before (the downsample doubles them)")
    if variant.token_mixer not in TOKEN_MIXERS:
        problems.append(f"token_mixer must be one of {', '.join(TOKEN_MIXERS)}")
    if path.stem != variant.name.lower():
        problems.append(f"the file name must be the variant name in lower case ({variant.name.lower()}.toml)")
    if problems:
        raise VariantError(f"{path}: " + "; ".join(problems))
    return variant


@lru_cache(maxsize=1)
def all_variants() -> tuple[Variant, ...]:
    """Every variant, plain family first, each family in index order."""
    found = [_read_variant(p) for p in sorted(variants_dir().glob("*.toml"))]
    if not found:
        raise VariantError(f"{variants_dir()} holds no variant files")
    return tuple(sorted(found, key=lambda v: (v.family != "plain", v.index)))


def variant_names() -> list[str]:
    return [v.name for v in all_variants()]


def _valid_list() -> str:
    plain = [v.name for v in all_variants() if v.family == "plain"]
    extra = [v.name for v in all_variants() if v.family != "plain"]
    parts = [f"{plain[0]}-{plain[-1]}"] if plain else []
    if extra:
        parts.append(f"{extra[0]}-{extra[-1]}")
    return (f"valid variants: {', '.join(variant_names())} (ranges such as {' or '.join(parts).lower()}, "
            "lists such as m0,m3, or 'all')")


def get_variant(name: str) -> Variant:
    by_name = {v.name.lower(): v for v in all_variants()}
    variant = by_name.get(name.strip().lower())
    if variant is None:
        raise VariantError(f"unknown variant {name.strip()!r}; {_valid_list()}")
    return variant


def parse_variants(selector: str) -> list[Variant]:
    """Expand a selector such as ``m0-m5``, ``m0,m3,m5``, ``M4``, ``m0e-m2e`` or ``all``.

    The result keeps the order given, without repeats.
    """
    if not selector or not selector.strip():
        raise VariantError(f"empty variant selector; {_valid_list()}")
    chosen: list[Variant] = []
    for part in (p.strip() for p in selector.split(",")):
        if not part:
            raise VariantError(f"empty item in variant selector {selector!r}; {_valid_list()}")
        if part.lower() == "all":
            chosen.extend(all_variants())
        elif "-" in part:
            chosen.extend(_parse_range(part))
        else:
            chosen.append(get_variant(part))
    return list(dict.fromkeys(chosen))


def _parse_range(part: str) -> list[Variant]:
    ends = part.split("-")
    if len(ends) != 2:
        raise VariantError(f"bad range {part!r}: use FIRST-LAST; {_valid_list()}")
    first, last = (get_variant(e) for e in ends)
    if first.family != last.family:
        raise VariantError(
            f"bad range {part!r}: {first.name} and {last.name} are in different families; {_valid_list()}"
        )
    if first.index > last.index:
        raise VariantError(f"bad range {part!r}: {first.name} comes after {last.name}; {_valid_list()}")
    return [v for v in all_variants() if v.family == first.family and first.index <= v.index <= last.index]

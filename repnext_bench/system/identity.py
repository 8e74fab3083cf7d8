"""Which machine a report comes from: an identity built from what decides speed, not from
the CPU's brand string (two "AMD EPYC" VMs, one with AVX-512 and one with AVX2 only, are two
machines), derived from whatever a report's ``environment`` holds, old reports included.
"""
from __future__ import annotations

# the identity's fields, in the order the "Machines" table shows them
FIELDS = ("cpu", "vendor", "family/model/stepping", "architecture", "ISA", "virtual", "usable cores", "memory GiB",
          "GPUs")
# the ISA features compared between reports: those every report version records (newer ones
# record more, which must not split one machine in two)
COMPARED_FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16",
                     "amx_int8", "amx_fp16", "neon", "asimd")
# the libraries whose versions change what a backend's cases measure (torch exports every model)
BACKEND_RUNTIMES = {"torch": ("torch",), "cuda": ("torch",), "onnxruntime": ("torch", "onnxruntime", "onnxruntime-gpu"),
                    "openvino": ("torch", "openvino"), "tensorrt": ("torch", "tensorrt"),
                    "coreml": ("torch", "coremltools")}
RUNTIMES = tuple(dict.fromkeys(name for names in BACKEND_RUNTIMES.values() for name in names))
MEMORY_TOLERANCE = 0.03  # memory totals read through different interfaces differ by a little


def isa_summary(features: list[str] | None) -> str:
    """The widest vector extensions a CPU has, in words: AMX, AVX-512 BF16, AVX2, NEON..."""
    found = set(features or [])
    if features is None:
        return "unknown ISA"
    if found & {"amx_tile", "amx_bf16", "amx_int8"}:
        return "AMX"
    if "avx512_bf16" in found:
        return "AVX-512 BF16"
    if "avx512f" in found:
        return "AVX-512"
    if "avx2" in found:
        return "AVX2"
    if "sve" in found:
        return "SVE"
    if found & {"asimd", "neon"}:
        return "NEON" + (" BF16" if "bf16" in found else "")
    return "no AVX2"


def identity(environment: dict) -> dict[str, str]:
    """The machine's identity fields as text (``unknown`` where a report does not say)."""
    cpu = environment.get("cpu") or {}

    def text(value) -> str:
        return "unknown" if value is None or value == "" else str(value)

    stepping = (cpu.get("family"), cpu.get("model_number"), cpu.get("stepping"))
    gpus = environment.get("gpus") or []
    memory = environment.get("memory_gib")
    features = cpu.get("features")
    if features == [] and "vendor" not in cpu:  # older reports read flags from /proc only: [] off Linux is unknown
        features = None
    return {
        "cpu": text(cpu.get("model")),
        "vendor": text(cpu.get("vendor")),
        "family/model/stepping": "unknown" if all(v is None for v in stepping) else "/".join(map(text, stepping)),
        "architecture": text(cpu.get("architecture")),
        "ISA": (", ".join(f for f in features if f in COMPARED_FEATURES) or "none") if features is not None
               else "unknown",
        "virtual": text(cpu.get("virtual")),
        "usable cores": text(cpu.get("usable_cores")),
        "memory GiB": text(round(memory, 1) if isinstance(memory, (int, float)) else memory),
        "GPUs": ", ".join(f"{g.get('name')} (driver {g.get('driver')})" if isinstance(g, dict) else str(g)
                          for g in gpus) or "none",
    }


def _differ(field: str, a: str, b: str) -> bool:
    if a == b or "unknown" in (a, b):
        return False
    if field == "memory GiB":
        try:
            return abs(float(a) - float(b)) > MEMORY_TOLERANCE * max(float(a), float(b))
        except ValueError:
            return True
    return True


def complete(ident: dict[str, str]) -> bool:
    """Whether a report recorded every identity field (older ones lack some)."""
    return "unknown" not in ident.values()


def same_machine(a: dict[str, str], b: dict[str, str]) -> bool:
    """Two identities are one machine when no field that both reports know differs (an older
    report that lacks a field matches any value of it; memory within 3%)."""
    return not any(_differ(f, a[f], b[f]) for f in FIELDS)


def differences(a: dict[str, str], b: dict[str, str]) -> list[str]:
    """The identity fields that differ (both known), as ``field: a -> b``."""
    return [f"{f}: {a[f]} -> {b[f]}" for f in FIELDS if _differ(f, a[f], b[f])]


def distinguishing(a: dict[str, str], b: dict[str, str]) -> str | None:
    """The first field in which ``b`` differs from ``a``, as ``field value`` (None if none does)."""
    return next((f"{f} {b[f]}" for f in FIELDS if _differ(f, a[f], b[f])), None)


def label(environment: dict) -> str:
    """``AMD EPYC (AVX-512 BF16, 2 cores)``, with the GPUs where there are any."""
    cpu = environment.get("cpu") or {}
    parts = [isa_summary(cpu.get("features"))]
    if cpu.get("usable_cores"):
        parts.append(f"{cpu['usable_cores']} cores")
    gpus = [g.get("name", str(g)) if isinstance(g, dict) else str(g) for g in environment.get("gpus") or []]
    return f"{cpu.get('model') or 'unknown CPU'} ({', '.join(parts)})" + (f" + {', '.join(gpus)}" if gpus else "")


def runtime_differences(a: dict, b: dict, backend: str | None = None) -> list[str]:
    """The runtime versions that differ between two environments, as ``name: a -> b`` (those
    that ``backend``'s cases depend on, when one is named)."""
    libs_a, libs_b = a.get("libraries") or {}, b.get("libraries") or {}
    names = BACKEND_RUNTIMES.get(backend, RUNTIMES) if backend else RUNTIMES
    return [f"{name}: {libs_a.get(name)} -> {libs_b.get(name)}" for name in names
            if libs_a.get(name) != libs_b.get(name)]


def runtime_version(environment: dict, backend: str) -> str:
    """The versions of what ``backend``'s cases run on, e.g. ``torch 2.13.0, onnxruntime 1.32.0``."""
    libs = environment.get("libraries") or {}
    return ", ".join(f"{name} {libs[name]}" for name in BACKEND_RUNTIMES.get(backend, ()) if libs.get(name))

"""Facts about this machine that decide speed, read through maintained libraries so that they
mean the same on Linux, macOS and Windows: py-cpuinfo for the CPU (model, family/model/
stepping, ISA flags), psutil for cores, memory and CPU affinity.

Each reader answers what the platform gives and ``None`` (or a plain fallback) for the rest;
none of them parses ``/proc`` by hand.
"""
from __future__ import annotations

import os
import platform
from functools import lru_cache

# The ISA features that decide which kernels and precisions the runtimes pick, as reported:
# x86 (AVX2 ... AMX), and Arm (NEON is called asimd on aarch64 Linux, neon on 32-bit Arm).
CPU_FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile",
                "amx_bf16", "amx_int8", "amx_fp16", "neon", "asimd", "asimdhp", "bf16", "i8mm", "sve", "sme")
# py-cpuinfo names some flags differently from Linux's /proc/cpuinfo: one spelling for reports
_FLAG_ALIASES = {"avx512bf16": "avx512_bf16", "avx512vnni": "avx512_vnni", "avx512fp16": "avx512_fp16",
                 "avxvnni": "avx_vnni", "amxtile": "amx_tile", "amxbf16": "amx_bf16", "amxint8": "amx_int8",
                 "amxfp16": "amx_fp16"}


def usable_cpu_ids() -> list[int] | None:
    """The ids of the CPUs this process may run on, or None where the OS cannot pin a process
    (psutil has no cpu_affinity on macOS)."""
    try:
        import psutil

        return sorted(psutil.Process().cpu_affinity())
    except (ImportError, AttributeError, OSError):
        return None


def usable_cores() -> int:
    """The CPUs this process may run on: its affinity where the OS has one (Linux, Windows),
    else every logical CPU."""
    return len(usable_cpu_ids() or []) or os.cpu_count() or 1


def pin_to(cpus: list[int]) -> bool:
    """Pin this process to ``cpus``; False where the OS does not allow it (macOS)."""
    try:
        import psutil

        psutil.Process().cpu_affinity(cpus)
    except (ImportError, AttributeError, OSError, ValueError):
        return False
    return True


def physical_cores() -> int | None:
    try:
        import psutil

        return psutil.cpu_count(logical=False)
    except ImportError:
        return None


def memory_gib() -> float | None:
    try:
        import psutil

        return round(psutil.virtual_memory().total / 1024**3, 1)
    except (ImportError, OSError):
        return None


def _normalize_flags(flags: list[str]) -> set[str]:
    return {_FLAG_ALIASES.get(flag.lower(), flag.lower()) for flag in flags}


def cpu_from(info: dict, architecture: str | None = None) -> dict:
    """The report's CPU facts from py-cpuinfo's answer ``info``: vendor, model name,
    family/model/stepping (where the OS gives them), architecture, whether it runs under a
    hypervisor (x86 says so in its flags; elsewhere that is unknown: None), and the ISA
    features of ``CPU_FEATURES`` it has."""
    architecture = architecture or platform.machine()
    flags = _normalize_flags(info.get("flags") or [])
    x86 = architecture.lower() in ("x86_64", "amd64", "i386", "i686", "x86")
    return {
        "model": info.get("brand_raw") or platform.processor() or architecture,
        "vendor": info.get("vendor_id_raw") or None,
        "family": info.get("family"),
        "model_number": info.get("model"),
        "stepping": info.get("stepping"),
        "architecture": architecture,
        "virtual": ("hypervisor" in flags) if flags and x86 else None,
        "features": sorted(f for f in CPU_FEATURES if f in flags),
    }


def _cpuinfo_answer() -> dict:
    try:
        import cpuinfo

        return cpuinfo.get_cpu_info()
    except Exception:  # py-cpuinfo missing, or a platform it cannot read: the plain facts only
        return {}


def _boot_key() -> str:
    """What must stay the same for cached CPU facts to hold: host, OS and boot."""
    try:
        import psutil

        boot = str(int(psutil.boot_time()))
    except (ImportError, OSError):
        boot = "unknown"
    return "|".join((platform.node(), platform.platform(), platform.machine(), boot))


@lru_cache(maxsize=1)
def cpu() -> dict:
    """This machine's CPU facts (see ``cpu_from``). py-cpuinfo takes about a second (it times
    the clock in a child process), so the answer is kept in the cache folder until the next
    boot, OS change or host change."""
    import hashlib
    import json

    from .cache_dir import default_cache_dir

    key = _boot_key()
    path = default_cache_dir() / f"machine-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
    try:
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            return cached["cpu"]
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    facts = cpu_from(_cpuinfo_answer())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps({"key": key, "cpu": facts}))
        os.replace(temporary, path)
    except OSError:  # a read-only cache folder: answer all the same
        pass
    return facts

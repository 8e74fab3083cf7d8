"""Cross-platform machine facts: cores, affinity, memory and the CPU fingerprint on Linux, and on
macOS and Windows simulated by taking away what they lack (no /proc, no CPU affinity, other
py-cpuinfo answers); and commands that answer without importing torch or a runtime."""
import json
import os
import subprocess
import sys
from collections import namedtuple

import psutil
import pytest

from repnext_bench.measure import memory
from repnext_bench.system import machine
from repnext_bench.system.environment import fingerprint


@pytest.fixture
def fresh_cpu():
    machine.cpu.cache_clear()
    yield
    machine.cpu.cache_clear()


@pytest.fixture
def no_affinity(monkeypatch):
    """As on macOS: neither os.sched_getaffinity nor psutil's cpu_affinity exists."""
    monkeypatch.delattr(psutil.Process, "cpu_affinity", raising=False)
    for name in ("sched_getaffinity", "sched_setaffinity"):
        if hasattr(os, name):
            monkeypatch.delattr(os, name)


@pytest.fixture
def no_proc(monkeypatch, tmp_path):
    """As on macOS and Windows: no /proc to read the resident set's high-water mark from."""
    monkeypatch.setattr(memory, "_STATUS", tmp_path / "no-proc" / "status")
    monkeypatch.setattr(memory, "_CLEAR_REFS", tmp_path / "no-proc" / "clear_refs")


def test_cores_and_affinity_on_linux():
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("this OS has no sched_getaffinity to check against")
    assert machine.usable_cores() == len(os.sched_getaffinity(0)) >= 1
    assert machine.usable_cpu_ids() == sorted(os.sched_getaffinity(0))


def test_cores_and_affinity_without_affinity(no_affinity):
    assert machine.usable_cores() == os.cpu_count()
    assert machine.usable_cpu_ids() is None and machine.pin_to([0]) is False
    from repnext_bench.gate.arm import _pin

    assert _pin(1) is None  # the gate's arms run unpinned there, and say so (affinity: null)


def test_memory_on_linux():
    if not memory._STATUS.exists():
        pytest.skip("no /proc here")
    # the peak can be reset where the kernel lets this process write clear_refs (not under gVisor, say)
    assert memory.reset_peak() is os.access(memory._CLEAR_REFS, os.W_OK)
    assert memory.peak_rss_mb() >= memory.current_rss_mb() * 0.9 > 0


def test_memory_without_proc_falls_back_to_getrusage(no_proc):
    resource = pytest.importorskip("resource", reason="Windows has no getrusage")
    assert memory.reset_peak() is False  # the peak then covers the whole process
    assert memory.current_rss_mb() == pytest.approx(psutil.Process().memory_info().rss / 1024**2, rel=0.2)
    unit = 1024**2 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB elsewhere
    assert memory.peak_rss_mb() == pytest.approx(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / unit, rel=0.05)


def test_memory_on_macos_reads_bytes(no_proc, monkeypatch):
    resource = pytest.importorskip("resource", reason="Windows has no getrusage")
    monkeypatch.setattr(memory.sys, "platform", "darwin")  # ru_maxrss is in bytes there
    assert memory.peak_rss_mb() == pytest.approx(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
                                                 rel=0.05)


def test_memory_on_windows_reads_the_peak_working_set(no_proc, monkeypatch):
    info = namedtuple("pmem", "rss vms peak_wset")(300 * 1024**2, 900 * 1024**2, 512 * 1024**2)
    monkeypatch.setattr(memory.sys, "platform", "win32")
    monkeypatch.setattr(psutil.Process, "memory_info", lambda self: info)
    assert memory.peak_rss_mb() == 512.0 and memory.current_rss_mb() == 300.0


ARM_LINUX = {"brand_raw": "Neoverse-V2", "vendor_id_raw": "ARM", "arch_string_raw": "aarch64",
             "flags": ["fp", "asimd", "asimdhp", "bf16", "i8mm", "sve", "sve2", "crc32"]}
APPLE = {"brand_raw": "Apple M2", "arch_string_raw": "arm64", "flags": []}  # py-cpuinfo on macOS: no flags
SAPPHIRE_RAPIDS = {"brand_raw": "Intel(R) Xeon(R) Platinum 8481C", "vendor_id_raw": "GenuineIntel", "family": 6,
                   "model": 143, "stepping": 8, "flags": ["avx2", "fma", "avx512f", "avx512_bf16", "amx_tile",
                                                           "amx_bf16", "amx_int8", "avx512_vnni", "hypervisor"]}
EPYC_AVX2 = {"brand_raw": "AMD EPYC", "vendor_id_raw": "AuthenticAMD", "family": 23, "model": 49, "stepping": 0,
             "flags": ["avx", "avx2", "fma", "sse4_2", "hypervisor"]}


@pytest.mark.parametrize("answer,architecture,features,virtual", [
    (ARM_LINUX, "aarch64", ["asimd", "asimdhp", "bf16", "i8mm", "sve"], None),  # Arm has no hypervisor flag
    (APPLE, "arm64", [], None),
    (SAPPHIRE_RAPIDS, "x86_64",
     ["amx_bf16", "amx_int8", "amx_tile", "avx2", "avx512_bf16", "avx512_vnni", "avx512f", "fma"], True),
    (EPYC_AVX2, "AMD64", ["avx2", "fma"], True),
], ids=["arm64-linux", "macos-arm64", "sapphire-rapids", "epyc-avx2-windows"])
def test_cpu_fingerprint_from_py_cpuinfo(answer, architecture, features, virtual):
    cpu = machine.cpu_from(answer, architecture)
    assert cpu["model"] == answer["brand_raw"] and cpu["features"] == features and cpu["virtual"] is virtual
    assert cpu["family"] == answer.get("family") and cpu["stepping"] == answer.get("stepping")
    assert cpu["architecture"] == architecture


def test_cpu_facts_are_kept_until_the_next_boot(monkeypatch, fresh_cpu, tmp_path):
    """py-cpuinfo takes about a second: its answer is cached per host, OS and boot."""
    import cpuinfo

    calls = []
    monkeypatch.setenv("REPNEXT_BENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(cpuinfo, "get_cpu_info", lambda: calls.append(1) or EPYC_AVX2)
    first = machine.cpu()
    machine.cpu.cache_clear()
    assert machine.cpu() == first and len(calls) == 1  # the second answer came from the file
    assert len(list(tmp_path.glob("machine-*.json"))) == 1
    monkeypatch.setattr(psutil, "boot_time", lambda: 12345.0)  # rebooted: asked again
    machine.cpu.cache_clear()
    assert machine.cpu()["features"] == ["avx2", "fma"] and len(calls) == 2


def test_fingerprint_without_py_cpuinfo_proc_or_affinity(monkeypatch, fresh_cpu, no_affinity, no_proc, tmp_path):
    """What a report says where nothing Linux-specific exists and py-cpuinfo cannot answer."""
    import cpuinfo

    def broken():
        raise RuntimeError("no CPUID here")

    monkeypatch.setenv("REPNEXT_BENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(cpuinfo, "get_cpu_info", broken)
    env = fingerprint(["repnext-bench", "env"])
    cpu = env["cpu"]
    assert cpu["model"] and cpu["architecture"] and cpu["features"] == [] and cpu["virtual"] is None
    assert cpu["usable_cores"] == cpu["logical_cores"] == os.cpu_count()
    assert env["memory_gib"] == round(psutil.virtual_memory().total / 1024**3, 1) > 0
    json.dumps(env)  # a report field: plain JSON


def test_a_signal_this_os_does_not_name_is_still_reported():
    from repnext_bench.run.case_process import exit_reason

    assert exit_reason(-11) == "the case's process crashed with a segmentation fault (SIGSEGV)"
    assert exit_reason(-9).startswith("the case's process was killed by SIGKILL")
    assert "signal 200" in exit_reason(-200)
    assert exit_reason(0xC0000005) == "the case's process crashed with an access violation (0xC0000005)"  # Windows
    assert exit_reason(3) == "the case's process exited with code 3 before answering"


HEAVY = ("torch", "onnxruntime", "openvino", "coremltools", "tensorrt")


def answer_without_heavy_imports(args: list[str]) -> tuple[int, list[str], str]:
    """Run the CLI in a fresh interpreter; (exit code, heavy modules imported, stderr)."""
    code = ("import json, sys\nfrom repnext_bench.cli import main\n"
            f"code = main({args!r})\n"
            f"print(json.dumps([code, [m for m in {HEAVY!r} if m in sys.modules]]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "COLUMNS": "200"})
    exit_code, heavy = json.loads(result.stdout.strip().splitlines()[-1])
    return exit_code, heavy, result.stderr


@pytest.mark.parametrize("args", [
    ["run", "--variants", "m9"], ["run", "--batch", "0"], ["run", "--backend", "tflite"],
    ["gate", "--variants", "m9"], ["profile", "--variant", "m9"], ["verify", "--variants", "m9"],
    ["export", "--variants", "m9"], ["variants", "--variants", "m9"], ["variants", "--resolution", "100"],
    ["report", "/no/such/report.json"], ["compare", "/no/a.json", "/no/b.json"],
], ids=" ".join)
def test_usage_errors_import_no_runtime(args):
    code, heavy, err = answer_without_heavy_imports(args)
    assert code == 2 and heavy == [] and len(err.strip().splitlines()) == 1


def test_report_and_compare_import_no_runtime(real_runs, tmp_path):
    folder, _, _ = real_runs
    code, heavy, err = answer_without_heavy_imports(["report", str(folder / "a.json"), "--format", "csv",
                                                     "--output", str(tmp_path / "a.csv")])
    assert code == 0 and heavy == [], err
    code, heavy, err = answer_without_heavy_imports(["compare", str(folder / "a.json"), str(folder / "c.json")])
    assert code in (0, 1, 3) and heavy == [], err


def test_a_report_from_a_checkout_names_its_commit():
    import shutil
    from pathlib import Path

    import repnext_bench
    from repnext_bench.system.environment import _git_commit

    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists() or not shutil.which("git"):
        pytest.skip("not a git checkout")
    if Path(repnext_bench.__file__).resolve().parents[1] != root:
        pytest.skip("repnext_bench is installed, not imported from this checkout: a report names no commit")
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert _git_commit()["commit"] == head

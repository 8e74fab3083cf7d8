"""Plain helpers the test modules share (fixtures stay in conftest.py)."""
from repnext_bench.hardware.identity import COMPARED_FEATURES


def unlike(features: list[str]) -> list[str]:
    """ISA features that make another machine than one with ``features``, whatever this one is:
    AVX2 and FMA, unless those are exactly the features compared, then NEON."""
    compared = {f for f in features if f in COMPARED_FEATURES}
    return ["avx2", "fma"] if compared != {"avx2", "fma"} else ["neon", "asimd"]


# what the lent NVIDIA machine has (beside its CUDA build of torch): the GPU check must work
# from a source checkout with these alone
GPU_MACHINE_PACKAGES = ("torch", "onnxruntime", "typer", "rich", "pytest", "pytest-benchmark", "numpy", "psutil",
                        "py-cpuinfo", "matplotlib", "pillow", "onnx")


def requirement_closure(names) -> dict:
    """The installed distributions ``names`` need, theirs included, as pip would install them
    (requirements behind an extra or a marker this interpreter does not meet left out)."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found, waiting = {}, list(names)
    while waiting:
        name = canonicalize_name(waiting.pop())
        if name in found:
            continue
        try:
            found[name] = distribution(name)
        except PackageNotFoundError:
            raise LookupError(f"{name} is not installed here") from None
        for text in found[name].requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                waiting.append(requirement.name)
    return found


def venv_with(folder, names) -> str:
    """A real virtual environment in ``folder`` that holds exactly ``names`` and what they need,
    linked from this environment's site-packages (nothing is downloaded or copied); returns its
    python."""
    import subprocess
    import sys
    import sysconfig
    from pathlib import Path

    folder = Path(folder)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    python = folder / ("Scripts" if sys.platform == "win32" else "bin") / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    here = Path(sysconfig.get_paths()["purelib"])
    for dist in requirement_closure(names).values():
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            if (here / top).exists() and not (site / top).exists():
                (site / top).symlink_to(here / top)
    return str(python)

"""The wheel carries the variant files, so an installed copy reads the same data as a checkout."""
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The project's wheel, built once by its build backend."""
    builder = pytest.importorskip("hatchling.builders.wheel", reason="building the wheel needs hatchling")
    folder = tmp_path_factory.mktemp("wheel")
    return next(iter(builder.WheelBuilder(str(ROOT)).build(directory=str(folder), versions=["standard"])))


def test_wheel_ships_every_variant_file(wheel):
    with zipfile.ZipFile(wheel) as archive:
        shipped = {Path(n).name for n in archive.namelist() if n.startswith("repnext_bench/variants/")}
        entry_points = next(n for n in archive.namelist() if n.endswith("entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    assert shipped == {p.name for p in (ROOT / "variants").glob("*.toml")}
    assert len(shipped) == 9
    assert "repnext-bench = repnext_bench.cli:main" in scripts


def test_each_gpu_and_apple_backend_has_its_extra_and_none_is_core(wheel):
    """The CPU install needs none of them; `backends` points at these extras."""
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    lines = metadata.splitlines()
    assert {"Provides-Extra: coreml", "Provides-Extra: tensorrt", "Provides-Extra: gpu"} <= set(lines)
    requires = [line for line in lines if line.startswith("Requires-Dist:")]
    core = [line for line in requires if "extra ==" not in line]
    assert not [line for line in core if any(name in line for name in ("tensorrt", "coremltools", "onnxruntime-gpu"))]
    assert any("tensorrt" in line and "extra == 'tensorrt'" in line for line in requires)
    assert any("onnxruntime-gpu" in line and "extra == 'gpu'" in line for line in requires)
    assert any("coremltools" in line and "extra == 'coreml'" in line for line in requires)

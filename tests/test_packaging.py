"""The wheel carries the variant files, so an installed copy reads the same data as a checkout."""
import zipfile
from pathlib import Path

from hatchling.builders.wheel import WheelBuilder

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_every_variant_file(tmp_path):
    wheel = next(iter(WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"])))
    with zipfile.ZipFile(wheel) as archive:
        shipped = {Path(n).name for n in archive.namelist() if n.startswith("repnext_bench/variants/")}
        entry_points = next(n for n in archive.namelist() if n.endswith("entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    assert shipped == {p.name for p in (ROOT / "variants").glob("*.toml")}
    assert len(shipped) == 9
    assert "repnext-bench = repnext_bench.cli:main" in scripts

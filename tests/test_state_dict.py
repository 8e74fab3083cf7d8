"""The module names and shapes are those of the official checkpoints (tests/data/state_dict_m0.tsv)."""
from pathlib import Path

import pytest

import repnext_bench
from repnext_bench.models import convert

TSV = Path(__file__).parent / "data" / "state_dict_m0.tsv"


def read_layouts() -> list[dict[str, tuple[int, ...]]]:
    """The two tables of the file: the train-time layout, then the official fused layout."""
    layouts: list[dict[str, tuple[int, ...]]] = []
    for line in TSV.read_text().splitlines():
        if line.startswith("#"):
            layouts.append({})
        elif line.strip():
            key, shape = line.split("\t")
            layouts[-1][key] = tuple(int(d) for d in shape.strip("()").split(",") if d.strip())
    return layouts


def layout(model) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_file_holds_the_two_layouts():
    train, official = read_layouts()
    assert (len(train), len(official)) == (671, 283)


def test_train_time_m0_matches_the_checkpoint_layout():
    expected = read_layouts()[0]
    actual = layout(repnext_bench.create_model("M0"))
    assert list(actual) == list(expected)  # same keys in the same order
    assert actual == expected


def test_official_form_matches_the_reference_fused_layout():
    expected = read_layouts()[1]
    actual = layout(convert(repnext_bench.create_model("M0"), "official"))
    assert actual == expected


@pytest.mark.parametrize("name", ["M0", "M1E"])
def test_fused_form_drops_every_batchnorm_entry(name):
    keys = repnext_bench.create_model(name, form="fused").state_dict()
    assert not [k for k in keys if "running_mean" in k or "num_batches_tracked" in k]

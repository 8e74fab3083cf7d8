"""Variant files and the selector parser."""
import pytest

from repnext_bench.models import VariantError, all_variants, get_variant, parse_variants
from repnext_bench.models.registry import _read_variant, variants_dir


def names(selector):
    return [v.name for v in parse_variants(selector)]


def test_every_variant_file_is_read():
    variants = {v.name: v for v in all_variants()}
    assert list(variants) == ["M0", "M1", "M2", "M3", "M4", "M5", "M0E", "M1E", "M2E"]
    assert variants["M4"].embed_dims == (64, 128, 256, 512)
    assert variants["M4"].depths == (5, 5, 25, 4)
    assert variants["M2E"].token_mixer == "e" and variants["M2E"].embed_dims == variants["M2"].embed_dims
    assert variants["M5"].paper.iphone12_latency_ms == 2.20
    assert variants["M0E"].paper.top1_distilled == 75.6


@pytest.mark.parametrize("selector,expected", [
    ("m0-m5", ["M0", "M1", "M2", "M3", "M4", "M5"]),
    ("m0,m3,m5", ["M0", "M3", "M5"]),
    ("M4", ["M4"]),
    ("m0e-m2e", ["M0E", "M1E", "M2E"]),
    ("all", ["M0", "M1", "M2", "M3", "M4", "M5", "M0E", "M1E", "M2E"]),
    (" m2 , M0E ", ["M2", "M0E"]),
    ("m1-m2,m0,m1", ["M1", "M2", "M0"]),
    ("m3-m3", ["M3"]),
])
def test_good_selectors(selector, expected):
    assert names(selector) == expected


@pytest.mark.parametrize("selector,reason", [
    ("m7", "unknown variant 'm7'"),
    ("m5-m0", "M5 comes after M0"),
    ("m0-m2e", "different families"),
    ("", "empty variant selector"),
    ("   ", "empty variant selector"),
    ("m0,", "empty item"),
    ("m0-m1-m2", "use FIRST-LAST"),
    ("m3e", "unknown variant"),
])
def test_bad_selectors_name_the_valid_variants(selector, reason):
    with pytest.raises(VariantError) as info:
        parse_variants(selector)
    message = str(info.value)
    assert reason in message
    assert "valid variants: M0, M1, M2, M3, M4, M5, M0E, M1E, M2E" in message


def test_get_variant_is_case_insensitive():
    assert get_variant("m1e") is get_variant("M1E")


def test_broken_variant_file_is_reported(tmp_path):
    bad = tmp_path / "m9.toml"
    bad.write_text((variants_dir() / "m0.toml").read_text().replace('name = "M0"', 'name = "M9"')
                   .replace("[40, 80, 160, 320]", "[40, 80, 160, 330]"))
    with pytest.raises(VariantError, match="multiple of 4.*twice the channels"):
        _read_variant(bad)
    bad.write_text("name = 'M9'\n")
    with pytest.raises(VariantError, match="not a valid variant file"):
        _read_variant(bad)

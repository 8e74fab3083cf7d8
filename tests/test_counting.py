"""Parameter and MAC counts against the paper's table and against hand-computed values."""
import pytest
import torch
from torch import nn

import repnext_bench
from repnext_bench.models import FORMS, RepNeXt, all_variants, convert
from repnext_bench.models.catalog import form_counts, matches_paper
from repnext_bench.models.counting import count

VARIANTS = {v.name: v for v in all_variants()}


@pytest.fixture(scope="module")
def counts():
    return {name: form_counts(v) for name, v in VARIANTS.items()}


@pytest.mark.parametrize("name", [n for n in VARIANTS if n != "M1E"])
def test_fused_counts_match_the_paper_at_its_rounding(counts, name):
    fused = counts[name]["fused"]
    paper = VARIANTS[name].paper
    assert f"{fused.params / 1e6:.1f}" == f"{paper.params_m:.1f}"
    assert f"{fused.macs / 1e9:.1f}" == f"{paper.macs_g:.1f}"
    assert fused.matches_paper is True


@pytest.mark.parametrize("name", ["M0", "M0E"])
def test_the_meta_device_counts_what_a_model_with_weights_counts(counts, name):
    """``form_counts`` counts shapes on the meta device; a model with real weights, converted
    form by form, has the same parameters and MACs."""
    model = RepNeXt(VARIANTS[name]).eval()
    for form in FORMS:
        model = convert(model, form, inplace=True)
        real = count(model, 224)
        assert (real.params, real.macs) == (counts[name][form].params, counts[name][form].macs)


def test_m1e_paper_figure_is_that_of_the_official_form(counts):
    """The paper's 5.3M for M1E is the official form's 5.255M; fully fused it is 5.246M."""
    assert counts["M1E"]["fused"].params == 5_245_576
    assert counts["M1E"]["fused"].matches_paper is False
    assert counts["M1E"]["official"].params == 5_255_080
    assert counts["M1E"]["official"].matches_paper is True


def test_compact_figures_of_fully_fused_m0_and_m0e(counts):
    assert round(counts["M0"]["fused"].params / 1e6, 3) == 2.328
    assert round(counts["M0E"]["fused"].params / 1e6, 3) == 2.541


def test_fusion_removes_parameters_and_macs_of_plain_variants(counts):
    for name in ["M0", "M1", "M2", "M3", "M4", "M5"]:
        assert counts[name]["fused"].params < counts[name]["official"].params < counts[name]["train"].params
        assert counts[name]["fused"].macs < counts[name]["train"].macs


def test_matches_paper_rounds_like_the_paper():
    m0 = VARIANTS["M0"]
    assert matches_paper(m0, 2_349_999, 449_999_999)
    assert not matches_paper(m0, 2_350_001, 400_000_000)
    assert not matches_paper(m0, 2_300_000, 450_000_001)


def test_counts_at_other_resolutions_have_no_paper_verdict():
    at_256 = form_counts(VARIANTS["M0"], 256)
    assert all(c.matches_paper is None and c.resolution == 256 for c in at_256.values())


def test_single_layers_count_by_hand():
    conv = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.Conv2d(8, 8, 5, padding=2, groups=8))
    # 16x16x8 outputs x 27 taps, then 16x16x8 outputs x 25 taps
    assert count(conv, 32).macs == 16 * 16 * 8 * 27 + 16 * 16 * 8 * 25
    head = nn.Sequential(nn.Conv2d(3, 4, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    assert count(head, 8).macs == 8 * 8 * 4 * 3 + 10 * 4


def test_macs_scale_with_resolution_and_batch():
    model = repnext_bench.create_model("M0", form="fused")
    base = count(model, 224)
    # every conv sees 4x the pixels at 448; the classifier does not grow
    head = base.per_module_macs["head"]
    assert count(model, 448).macs - head == 4 * (base.macs - head)
    assert count(model, 224, batch=3).macs == 3 * base.macs
    assert count(model, (224, 448)).macs - head == 2 * (base.macs - head)


def test_counting_leaves_the_model_usable():
    model = repnext_bench.create_model("M0", form="fused")
    count(model, 64)
    assert all(not p.is_meta for p in model.parameters())
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1000)

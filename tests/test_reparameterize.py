"""The fused form of every variant computes what the train-time form computes."""
import pytest
import torch
from helpers import rel_err
from torch import nn

import repnext_bench
from repnext_bench.models import all_variants, convert
from repnext_bench.models.layers import ChunkConv, ChunkConvE, ConvNorm, CopyConv, CopyConvE, RepDWConvM, RepDWConvS
from repnext_bench.models.randomize import randomize

VARIANTS = [v.name for v in all_variants()]
TRAIN_ONLY = (nn.BatchNorm1d, nn.BatchNorm2d, ConvNorm, RepDWConvS, RepDWConvM, ChunkConvE, CopyConvE)


def test_all_nine_variants_are_known():
    assert VARIANTS == ["M0", "M1", "M2", "M3", "M4", "M5", "M0E", "M1E", "M2E"]


@pytest.mark.parametrize("name", VARIANTS)
def test_fused_matches_train_time_with_random_batchnorm(name, images):
    model = randomize(repnext_bench.create_model(name), seed=VARIANTS.index(name))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fused = repnext_bench.reparameterize(model)
    with torch.no_grad():
        expected, actual = model(images), fused(images)
    assert rel_err(actual, expected) < 1e-5
    # the train-time model is untouched and shares no tensor with the fused one
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    fused_ptrs = {p.data_ptr() for p in fused.parameters()}
    assert not fused_ptrs & {p.data_ptr() for p in model.parameters()}


@pytest.mark.parametrize("name", VARIANTS)
def test_fused_form_is_fully_fused(name):
    fused = repnext_bench.create_model(name, form="fused")
    assert fused.form == "fused"
    leftovers = sorted({type(m).__name__ for m in fused.modules() if isinstance(m, TRAIN_ONLY)})
    assert leftovers == []
    assert isinstance(fused.head, nn.Linear)
    for block in (b for stage in fused.stages for b in stage.blocks):
        assert isinstance(block.norm, nn.Identity)
        if isinstance(block.token_mixer, ChunkConv):  # the 1x11 -> 11x1 pair stays serial
            assert [c.kernel_size for c in block.token_mixer.conv_l] == [(1, 11), (11, 1)]
        else:
            assert isinstance(block.token_mixer, nn.Conv2d) and block.token_mixer.kernel_size == (11, 11)
    for stage in list(fused.stages)[1:]:
        assert isinstance(stage.downsample.norm, nn.Identity)
        assert isinstance(stage.downsample.token_mixer, (CopyConv, nn.Conv2d))


def test_random_batchnorm_statistics_matter(images):
    """Guard for the tests above: with random statistics a BN fold that was skipped would show."""
    model = repnext_bench.create_model("M0")
    plain = model(images)
    assert rel_err(randomize(model)(images), plain) > 0.1


def test_reparameterize_on_fused_is_a_no_op():
    fused = repnext_bench.create_model("M0", form="fused")
    assert repnext_bench.reparameterize(fused) is fused


@pytest.mark.parametrize("name", ["M0", "M0E"])
def test_official_form_sits_between(name, images):
    model = randomize(repnext_bench.create_model(name))
    official = convert(model, "official")
    assert official.form == "official"
    assert any(isinstance(m, nn.BatchNorm2d) for m in official.modules())
    fused = repnext_bench.reparameterize(official)
    with torch.no_grad():
        expected = model(images)
        assert rel_err(official(images), expected) < 1e-5
        assert rel_err(fused(images), expected) < 1e-5


def test_conversion_does_not_go_backwards():
    fused = repnext_bench.create_model("M0", form="fused")
    with pytest.raises(ValueError, match="cannot be turned back"):
        convert(fused, "train")


def test_create_model_options():
    model = repnext_bench.create_model("m3", num_classes=10)
    assert model.variant.name == "M3" and not model.training
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)
    with pytest.raises(ValueError, match="unknown form"):
        repnext_bench.create_model("M0", form="half")
    with pytest.raises(ValueError, match="valid variants"):
        repnext_bench.create_model("M9")


def test_any_multiple_of_32_works():
    fused = repnext_bench.create_model("M0", form="fused", num_classes=7)
    assert fused(torch.randn(1, 3, 96, 160)).shape == (1, 7)

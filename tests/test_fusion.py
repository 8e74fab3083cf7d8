"""Each fusion step on its own, checked on outputs: stride 1 and 2, with and without bias."""
import pytest
import torch
from helpers import rel_err
from torch import nn

from repnext_bench.models.fusion import (
    bn_affine,
    compose_serial,
    conv_with_input_affine,
    conv_with_output_affine,
    embed_kernel,
    merge_parallel,
)
from repnext_bench.models.layers import (
    ChunkConv,
    ChunkConvE,
    ConvNorm,
    CopyConv,
    CopyConvE,
    NormLinear,
    RepDWConvM,
    RepDWConvS,
    RepNextClassifier,
    dw_conv,
    fuse_module,
)
from repnext_bench.models.network import Downsample, MetaNeXtBlock
from repnext_bench.models.randomize import randomize

TOL = 1e-5
torch.manual_seed(0)


def feature_map(channels: int, height: int = 15, width: int = 17) -> torch.Tensor:
    # odd, unequal sides: a misplaced tap or padding shows at the borders of stride-2 outputs
    return torch.randn(2, channels, height, width)


def check(module: nn.Module, fused: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        expected, actual = module(x), fused(x)
    assert rel_err(actual, expected) < TOL


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("bias", [False, True])
def test_conv_then_batchnorm_folds(stride, bias):
    conv = nn.Conv2d(6, 8, 3, stride, 1, bias=bias)
    bn = nn.BatchNorm2d(8)
    module = randomize(nn.Sequential(conv, bn))
    check(module, conv_with_output_affine(conv, *bn_affine(bn)), feature_map(6))


@pytest.mark.parametrize("stride", [1, 2])
def test_convnorm_fuses_to_one_conv(stride):
    module = randomize(ConvNorm(6, 8, 3, stride, 1))
    fused = module.fuse()
    assert isinstance(fused, nn.Conv2d) and fused.bias is not None
    check(module, fused, feature_map(6))


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("bias", [False, True])
def test_batchnorm_then_1x1_conv_folds(stride, bias):
    bn = nn.BatchNorm2d(6)
    conv = nn.Conv2d(6, 12, 1, stride, bias=bias)
    module = randomize(nn.Sequential(bn, conv))
    check(module, conv_with_input_affine(*bn_affine(bn), conv), feature_map(6))


def test_affine_does_not_fold_into_a_padded_conv():
    # the padded zeros would not be shifted: refusing is the only exact answer
    with pytest.raises(ValueError, match="no padding"):
        conv_with_input_affine(torch.ones(4), torch.zeros(4), nn.Conv2d(4, 4, 3, padding=1))


def test_normlinear_and_classifier_fuse_to_one_linear():
    x = torch.randn(5, 16)
    norm_linear = randomize(NormLinear(16, 10))
    check(norm_linear, norm_linear.fuse(), x)
    classifier = randomize(RepNextClassifier(16, 10))
    fused = classifier.fuse()
    assert isinstance(fused, nn.Linear)
    check(classifier, fused, x)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("bias", [False, True])
def test_parallel_branches_of_any_shape_merge(stride, bias):
    """3x3 + 1x3 + 3x1 + dilated 2x2 + 1x1 summed, merged into one 3x3 by tap offsets."""
    branches = nn.ModuleList([
        dw_conv(4, 3, stride, 1, bias=bias),
        dw_conv(4, (1, 3), stride, (0, 1), bias=bias),
        dw_conv(4, (3, 1), stride, (1, 0), bias=bias),
        dw_conv(4, 2, stride, 1, dilation=2, bias=bias),
        dw_conv(4, 1, stride, 0, bias=bias),
    ])
    randomize(branches)

    class Sum(nn.Module):
        def forward(self, x):
            return sum(b(x) for b in branches)

    check(Sum(), merge_parallel(list(branches), (3, 3), (1, 1)), feature_map(4))


def test_dilated_2x2_lands_on_the_corners():
    conv = dw_conv(1, 2, 1, 1, dilation=2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]))
    kernel = embed_kernel(conv, (3, 3), (1, 1))[0, 0]
    assert torch.equal(kernel, torch.tensor([[1.0, 0, 2.0], [0, 0, 0], [3.0, 0, 4.0]]))


def test_misaligned_branch_is_refused():
    # a 3x3 without padding reads other pixels than a 3x3 with padding 1
    with pytest.raises(ValueError, match="does not line up"):
        embed_kernel(dw_conv(4, 3, 1, 0), (3, 3), (1, 1))
    with pytest.raises(ValueError, match="does not"):
        embed_kernel(dw_conv(4, 7, 1, 3), (5, 5), (2, 2))


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("bias", [False, True])
def test_serial_1xk_kx1_composes_to_outer_product(stride, bias):
    first = dw_conv(4, (1, 7), (1, stride), (0, 3), bias=False)
    second = dw_conv(4, (7, 1), (stride, 1), (3, 0), bias=bias)
    module = randomize(nn.Sequential(first, second))
    fused = compose_serial(first, second)
    assert fused.kernel_size == (7, 7) and fused.stride == (stride, stride)
    check(module, fused, feature_map(4))


def test_serial_pair_with_a_first_bias_is_refused_and_really_inexact():
    """The 1x11 -> 11x1 pair: a rank-1 merge is wrong in the 5 border rows, so it must stay serial."""
    first = dw_conv(2, (1, 11), 1, (0, 5))
    second = dw_conv(2, (11, 1), 1, (5, 0))
    randomize(nn.Sequential(first, second))
    with pytest.raises(ValueError, match="bias"):
        compose_serial(first, second)
    # the naive merge: rank-1 kernel, first bias pushed through the second conv's taps
    unbiased = dw_conv(2, (1, 11), 1, (0, 5), bias=False)
    with torch.no_grad():
        unbiased.weight.copy_(first.weight)
    naive = compose_serial(unbiased, second)
    with torch.no_grad():
        naive.bias.add_(first.bias * second.weight.sum((1, 2, 3)))
        x = feature_map(2, 20, 20)
        diff = (naive(x) - second(first(x))).abs().amax(dim=(0, 1, 3))
    assert diff[5:-5].max() < 1e-5  # interior rows agree
    assert diff[:5].min() > 1e-4 and diff[-5:].min() > 1e-4  # every border row differs


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("layer,kernel", [(RepDWConvS, (3, 3)), (RepDWConvM, (7, 7))])
def test_repdwconv_fuses_to_one_dw_conv(layer, kernel, stride):
    module = randomize(layer(8, stride))
    fused = module.fuse()
    assert fused.kernel_size == kernel and fused.groups == 8 and fused.stride == (stride, stride)
    check(module, fused, feature_map(8))


def test_chunkconv_fuses_and_keeps_the_large_pair_serial():
    module = randomize(ChunkConv.build(16))
    fused = module.fuse()
    assert isinstance(fused.conv_s, nn.Conv2d) and isinstance(fused.conv_m, nn.Conv2d)
    assert [c.kernel_size for c in fused.conv_l] == [(1, 11), (11, 1)]
    check(module, fused, feature_map(16))


def test_chunkconv_e_fuses_to_one_11x11():
    module = randomize(ChunkConvE(16))
    fused = module.fuse()
    assert isinstance(fused, nn.Conv2d) and fused.kernel_size == (11, 11) and fused.groups == 16
    check(module, fused, feature_map(16))


@pytest.mark.parametrize("mixer", [CopyConv.build, CopyConvE])
def test_copyconv_fuses(mixer):
    module = randomize(mixer(8))
    check(module, module.fuse(), feature_map(8))


def test_copyconv_e_fuses_to_one_grouped_conv():
    fused = randomize(CopyConvE(8)).fuse()
    assert isinstance(fused, nn.Conv2d)
    assert (fused.in_channels, fused.out_channels, fused.groups, fused.kernel_size) == (8, 16, 8, (7, 7))


@pytest.mark.parametrize("mixer", [ChunkConv.build, ChunkConvE])
def test_block_norm_folds_into_channel_mixer(mixer):
    block = randomize(MetaNeXtBlock(16, 2, mixer(16)))
    fused = randomize(MetaNeXtBlock(16, 2, mixer(16)))
    fused.load_state_dict(block.state_dict())
    fused.token_mixer = fused.token_mixer.fuse()
    fused.channel_mixer = nn.Sequential(*(fuse_module(m) for m in fused.channel_mixer))
    fused.fold_norm()
    assert isinstance(fused.norm, nn.Identity)
    check(block, fused, feature_map(16))


@pytest.mark.parametrize("mixer", [CopyConv.build, CopyConvE])
def test_downsample_norm_folds_into_token_mixer(mixer):
    down = randomize(Downsample(8, 2, mixer(8)))
    fused = Downsample(8, 2, mixer(8))
    fused.load_state_dict(down.state_dict())
    fused.eval()
    fused.token_mixer = fused.token_mixer.fuse()
    fused.fold_norm()
    assert isinstance(fused.norm, nn.Identity)
    check(down, fused, feature_map(8))

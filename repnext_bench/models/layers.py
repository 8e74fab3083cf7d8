"""The layers of RepNeXt in their train-time form, each with ``fuse()`` returning its
inference-time form. Module and attribute names follow the official checkpoints."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .fusion import (
    bn_affine,
    compose_serial,
    concat_depthwise,
    conv_with_output_affine,
    identity_conv,
    linear_with_input_affine,
    make_conv,
    merge_parallel,
)


def dw_conv(channels: int, kernel_size, stride=1, padding=0, dilation=1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(
        channels, channels, kernel_size, stride=stride, padding=padding, dilation=dilation, groups=channels, bias=bias
    )


def fuse_module(module: nn.Module) -> nn.Module:
    """The inference-time form of ``module``, or the module itself when it has none."""
    fuse = getattr(module, "fuse", None)
    return fuse() if callable(fuse) else module


class ConvNorm(nn.Sequential):
    """A conv without bias followed by a BatchNorm; fuses into one conv with bias."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1,
                 padding: int = 0, groups: int = 1) -> None:
        super().__init__()
        self.add_module("conv", nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                                          groups=groups, bias=False))
        self.add_module("norm", nn.BatchNorm2d(out_channels))

    def fuse(self) -> nn.Conv2d:
        return conv_with_output_affine(self.conv, *bn_affine(self.norm))


class NormLinear(nn.Sequential):
    """BatchNorm1d followed by a Linear; fuses into one Linear."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.add_module("norm", nn.BatchNorm1d(in_features))
        self.add_module("linear", nn.Linear(in_features, out_features))
        nn.init.trunc_normal_(self.linear.weight, std=0.02)
        nn.init.zeros_(self.linear.bias)

    def fuse(self) -> nn.Linear:
        return linear_with_input_affine(*bn_affine(self.norm), self.linear)


class RepNextClassifier(nn.Module):
    """Two NormLinear heads (class and distillation) averaged; fuses into one Linear."""

    def __init__(self, in_features: int, num_classes: int, distillation: bool = False) -> None:
        super().__init__()
        self.head = NormLinear(in_features, num_classes)
        self.head_dist = NormLinear(in_features, num_classes)
        self.distillation = distillation

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        out, out_dist = self.head(x), self.head_dist(x)
        if self.training and self.distillation:
            return out, out_dist
        return (out + out_dist) / 2

    @torch.no_grad()
    def fuse(self) -> nn.Linear:
        fused, fused_dist = self.head.fuse(), self.head_dist.fuse()
        fused.weight.copy_((fused.weight + fused_dist.weight) / 2)
        fused.bias.copy_((fused.bias + fused_dist.bias) / 2)
        return fused


class RepDWConvS(nn.Module):
    """Small-kernel branches: 3x3 + 1x3 + 3x1 + dilated 2x2; fuses into one 3x3 dw conv.

    At stride 1 the 1x3 and 3x1 are parallel branches; at stride 2 they are serial.
    """

    def __init__(self, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        self.conv_3_3 = dw_conv(channels, 3, stride, 1)
        self.conv_3_w = dw_conv(channels, (1, 3), (1, stride), (0, 1), bias=stride == 1)
        self.conv_3_h = dw_conv(channels, (3, 1), (stride, 1), (1, 0), bias=stride == 1)
        self.conv_2_2 = dw_conv(channels, 2, stride, 1, dilation=2)

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 1:
            return self.conv_3_3(x) + self.conv_3_h(x) + self.conv_3_w(x) + self.conv_2_2(x)
        return self.conv_3_3(x) + self.conv_3_h(self.conv_3_w(x)) + self.conv_2_2(x)

    def fuse(self) -> nn.Conv2d:
        if self.stride == 1:
            branches = [self.conv_3_3, self.conv_3_w, self.conv_3_h, self.conv_2_2]
        else:
            branches = [self.conv_3_3, compose_serial(self.conv_3_w, self.conv_3_h), self.conv_2_2]
        return merge_parallel(branches, (3, 3), (1, 1))


class RepDWConvM(nn.Module):
    """Medium-kernel branches: 7x7 + 5x3 + 3x5 + serial 1x7/7x1 + serial 1x5/5x1; fuses into one 7x7."""

    def __init__(self, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv_7_7 = dw_conv(channels, 7, stride, 3)
        self.conv_5_3 = dw_conv(channels, (5, 3), stride, (2, 1))
        self.conv_3_5 = dw_conv(channels, (3, 5), stride, (1, 2))
        self.conv_7_w = dw_conv(channels, (1, 7), (1, stride), (0, 3), bias=False)
        self.conv_7_h = dw_conv(channels, (7, 1), (stride, 1), (3, 0), bias=False)
        self.conv_5_w = dw_conv(channels, (1, 5), (1, stride), (0, 2), bias=False)
        self.conv_5_h = dw_conv(channels, (5, 1), (stride, 1), (2, 0), bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return (self.conv_7_7(x) + self.conv_5_3(x) + self.conv_3_5(x)
                + self.conv_7_h(self.conv_7_w(x)) + self.conv_5_h(self.conv_5_w(x)))

    def fuse(self) -> nn.Conv2d:
        branches = [self.conv_7_7, self.conv_5_3, self.conv_3_5,
                    compose_serial(self.conv_7_w, self.conv_7_h), compose_serial(self.conv_5_w, self.conv_5_h)]
        return merge_parallel(branches, (7, 7), (3, 3))


def large_kernel_pair(channels: int) -> nn.Sequential:
    """The serial 1x11 -> 11x1 pair. Both convs have a bias, so it never merges exactly."""
    return nn.Sequential(dw_conv(channels, (1, 11), 1, (0, 5)), dw_conv(channels, (11, 1), 1, (5, 0)))


class ChunkConv(nn.Module):
    """Token mixer of a block: four channel chunks through identity, small, medium and large branches."""

    def __init__(self, conv_s: nn.Module, conv_m: nn.Module, conv_l: nn.Module) -> None:
        super().__init__()
        self.conv_s, self.conv_m, self.conv_l = conv_s, conv_m, conv_l

    @classmethod
    def build(cls, dim: int) -> ChunkConv:
        chunk = dim // 4
        return cls(RepDWConvS(chunk), RepDWConvM(chunk), large_kernel_pair(chunk))

    def forward(self, x: Tensor) -> Tensor:
        x_i, x_s, x_m, x_l = torch.chunk(x, 4, dim=1)
        return torch.cat((x_i, self.conv_s(x_s), self.conv_m(x_m), self.conv_l(x_l)), dim=1)

    def fuse(self) -> ChunkConv:
        return ChunkConv(fuse_module(self.conv_s), fuse_module(self.conv_m), self.conv_l)


class CopyConv(nn.Module):
    """Token mixer of a downsample: small and medium stride-2 branches on the whole input, concatenated."""

    def __init__(self, conv_s: nn.Module, conv_m: nn.Module) -> None:
        super().__init__()
        self.conv_s, self.conv_m = conv_s, conv_m

    @classmethod
    def build(cls, dim: int) -> CopyConv:
        return cls(RepDWConvS(dim, stride=2), RepDWConvM(dim, stride=2))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat((self.conv_s(x), self.conv_m(x)), dim=1)

    def fuse(self) -> CopyConv:
        return CopyConv(fuse_module(self.conv_s), fuse_module(self.conv_m))

    def with_output_affine(self, scale: Tensor, shift: Tensor) -> CopyConv:
        """Fold a per-channel affine on the output into the two (fused) branches."""
        if not (isinstance(self.conv_s, nn.Conv2d) and isinstance(self.conv_m, nn.Conv2d)):
            raise ValueError("fuse the branches before folding an affine into them")
        half = self.conv_s.out_channels
        return CopyConv(conv_with_output_affine(self.conv_s, scale[:half], shift[:half]),
                        conv_with_output_affine(self.conv_m, scale[half:], shift[half:]))


class ChunkConvE(nn.Module):
    """Token mixer of the E variants: identity, 3x3, 7x7 and 11x11 dw convs on four chunks;
    fuses into one 11x11 dw conv over all channels."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        chunk = dim // 4
        self.conv_s = dw_conv(chunk, 3, 1, 1)
        self.conv_m = dw_conv(chunk, 7, 1, 3)
        self.conv_l = dw_conv(chunk, 11, 1, 5)

    def forward(self, x: Tensor) -> Tensor:
        x_i, x_s, x_m, x_l = torch.chunk(x, 4, dim=1)
        return torch.cat((x_i, self.conv_s(x_s), self.conv_m(x_m), self.conv_l(x_l)), dim=1)

    def fuse(self) -> nn.Conv2d:
        identity = identity_conv(self.conv_s.in_channels, self.conv_s.weight)
        chunks = [identity, self.conv_s, self.conv_m, self.conv_l]
        return concat_depthwise([merge_parallel([c], (11, 11), (5, 5)) for c in chunks])


class CopyConvE(nn.Module):
    """Downsample token mixer of the E variants: 3x3 and 7x7 stride-2 dw convs, outputs
    interleaved per channel; fuses into one 7x7 conv with two outputs per group."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv_s = dw_conv(dim, 3, 2, 1)
        self.conv_l = dw_conv(dim, 7, 2, 3)

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack((self.conv_s(x), self.conv_l(x)), dim=2).flatten(1, 2)

    def fuse(self) -> nn.Conv2d:
        small = merge_parallel([self.conv_s], (7, 7), (3, 3))
        weight = torch.stack((small.weight, self.conv_l.weight), dim=1).flatten(0, 1)
        bias = torch.stack((small.bias, self.conv_l.bias), dim=1).flatten()
        return make_conv(weight, bias, stride=2, padding=3, groups=self.conv_s.in_channels)

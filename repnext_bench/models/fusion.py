"""Exact folding of BatchNorms and multi-branch convolutions into single layers.

Each function takes layers and returns a new layer with the same function. Nothing here
assumes a kernel size: kernels are placed by their tap offsets, so a branch whose geometry
cannot be merged exactly raises ``ValueError`` instead of returning a wrong layer.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def make_conv(
    weight: Tensor,
    bias: Tensor | None,
    *,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
) -> nn.Conv2d:
    """A Conv2d holding ``weight`` (out, in/groups, kh, kw) and ``bias``."""
    conv = nn.Conv2d(
        weight.shape[1] * groups,
        weight.shape[0],
        tuple(weight.shape[2:]),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        bias=bias is not None,
        device=weight.device,
        dtype=weight.dtype,
    )
    with torch.no_grad():
        conv.weight.copy_(weight)
        if bias is not None:
            conv.bias.copy_(bias)
    return conv


def conv_bias(conv: nn.Conv2d) -> Tensor:
    return conv.bias if conv.bias is not None else conv.weight.new_zeros(conv.out_channels)


@torch.no_grad()
def bn_affine(bn: nn.BatchNorm1d | nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """The (scale, shift) per channel that an inference-mode BatchNorm applies."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("a BatchNorm without running statistics cannot be folded")
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return scale, shift


@torch.no_grad()
def conv_with_output_affine(conv: nn.Conv2d, scale: Tensor, shift: Tensor) -> nn.Conv2d:
    """``scale * conv(x) + shift`` (per output channel) as one conv: how a ConvNorm fuses."""
    weight = conv.weight * scale.reshape(-1, 1, 1, 1)
    bias = conv_bias(conv) * scale + shift
    return make_conv(
        weight, bias, stride=conv.stride, padding=conv.padding, dilation=conv.dilation, groups=conv.groups
    )


@torch.no_grad()
def _input_affine(weight: Tensor, bias: Tensor | None, scale: Tensor, shift: Tensor) -> tuple[Tensor, Tensor]:
    shape = (1, -1) + (1,) * (weight.dim() - 2)
    new_bias = (weight * shift.reshape(shape)).flatten(1).sum(1)
    if bias is not None:
        new_bias = new_bias + bias
    return weight * scale.reshape(shape), new_bias


def conv_with_input_affine(scale: Tensor, shift: Tensor, conv: nn.Conv2d) -> nn.Conv2d:
    """``conv(scale * x + shift)`` (per input channel) as one conv.

    Exact only without padding (padded zeros would not be shifted) and with groups=1.
    """
    if any(_pair(conv.padding)) or conv.groups != 1:
        raise ValueError(
            "an affine can fold into the following conv only when that conv has no padding and groups=1 "
            f"(got padding={conv.padding}, groups={conv.groups})"
        )
    weight, bias = _input_affine(conv.weight, conv.bias, scale, shift)
    return make_conv(weight, bias, stride=conv.stride, dilation=conv.dilation)


def linear_with_input_affine(scale: Tensor, shift: Tensor, linear: nn.Linear) -> nn.Linear:
    """``linear(scale * x + shift)`` as one Linear: how a NormLinear fuses."""
    weight, bias = _input_affine(linear.weight, linear.bias, scale, shift)
    fused = nn.Linear(linear.in_features, linear.out_features, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        fused.weight.copy_(weight)
        fused.bias.copy_(bias)
    return fused


def embed_kernel(conv: nn.Conv2d, kernel_size: tuple[int, int], padding: tuple[int, int]) -> Tensor:
    """``conv``'s kernel placed in a larger (dilation 1) kernel with the given padding.

    A tap at index t of a conv with dilation d and padding p reads the input at offset
    t*d - p from the output position; in the target it goes to index t*d - p + P. The
    two convs must also cover the same extent so that their outputs have the same size.
    """
    weight = conv.weight
    indices = []
    for axis, (k, d, p, big_k, big_p) in enumerate(
        zip(weight.shape[2:], _pair(conv.dilation), _pair(conv.padding), kernel_size, padding)
    ):
        if 2 * p - d * (k - 1) != 2 * big_p - (big_k - 1):
            raise ValueError(
                f"kernel {tuple(weight.shape[2:])} (dilation {conv.dilation}, padding {conv.padding}) "
                f"does not line up with a {kernel_size} kernel at padding {padding} on axis {axis}"
            )
        index = [t * d - p + big_p for t in range(k)]
        if index[0] < 0 or index[-1] >= big_k:
            raise ValueError(f"kernel {tuple(weight.shape[2:])} does not fit in {kernel_size}")
        indices.append(torch.tensor(index, device=weight.device))
    out = weight.new_zeros(weight.shape[0], weight.shape[1], *kernel_size)
    out[:, :, indices[0][:, None], indices[1][None, :]] = weight
    return out


@torch.no_grad()
def merge_parallel(
    convs: Sequence[nn.Conv2d], kernel_size: tuple[int, int], padding: tuple[int, int]
) -> nn.Conv2d:
    """The sum of parallel convs over the same input, as one conv of the given size."""
    first = convs[0]
    for conv in convs[1:]:
        if (conv.in_channels, conv.out_channels, conv.groups, _pair(conv.stride)) != (
            first.in_channels,
            first.out_channels,
            first.groups,
            _pair(first.stride),
        ):
            raise ValueError("parallel branches must share channels, groups and stride")
    weight = sum(embed_kernel(c, kernel_size, padding) for c in convs)
    bias = sum(conv_bias(c) for c in convs)
    return make_conv(weight, bias, stride=first.stride, padding=padding, groups=first.groups)


@torch.no_grad()
def compose_serial(first: nn.Conv2d, second: nn.Conv2d) -> nn.Conv2d:
    """A depthwise 1xk conv followed by a depthwise kx1 conv, as one conv (outer product).

    Exact only when the first conv has no bias: otherwise the second conv's zero padding
    meets that bias at the borders, where a single conv would see it.
    """
    if first.bias is not None:
        raise ValueError(
            "the first conv of a serial pair has a bias: no single conv is exact at the borders; keep the pair"
        )
    ok_first = first.kernel_size[0] == 1 and _pair(first.stride)[0] == 1 and _pair(first.padding)[0] == 0
    ok_second = second.kernel_size[1] == 1 and _pair(second.stride)[1] == 1 and _pair(second.padding)[1] == 0
    channels = first.out_channels
    depthwise = all(c.groups == c.in_channels == c.out_channels == channels for c in (first, second))
    plain = _pair(first.dilation) == _pair(second.dilation) == (1, 1)
    if not (ok_first and ok_second and depthwise and plain):
        raise ValueError("compose_serial expects a depthwise 1xk conv followed by a depthwise kx1 conv")
    row = first.weight[:, 0, 0, :]  # (C, kw)
    column = second.weight[:, 0, :, 0]  # (C, kh)
    weight = (column[:, :, None] * row[:, None, :]).unsqueeze(1)
    return make_conv(
        weight,
        second.bias,
        stride=(_pair(second.stride)[0], _pair(first.stride)[1]),
        padding=(_pair(second.padding)[0], _pair(first.padding)[1]),
        groups=channels,
    )


def identity_conv(channels: int, like: Tensor) -> nn.Conv2d:
    """The identity as a depthwise 1x1 conv, so that it can be merged like any branch."""
    return make_conv(like.new_ones(channels, 1, 1, 1), like.new_zeros(channels), groups=channels)


def concat_depthwise(convs: Sequence[nn.Conv2d]) -> nn.Conv2d:
    """Depthwise convs applied to consecutive channel chunks, as one depthwise conv."""
    first = convs[0]
    if any(c.groups != c.in_channels or c.out_channels != c.in_channels for c in convs):
        raise ValueError("concat_depthwise expects depthwise convs")
    if len({(c.kernel_size, _pair(c.stride), _pair(c.padding), _pair(c.dilation)) for c in convs}) != 1:
        raise ValueError("concatenated convs must share kernel size, stride, padding and dilation")
    weight = torch.cat([c.weight for c in convs])
    bias = torch.cat([conv_bias(c) for c in convs])
    return make_conv(
        weight, bias, stride=first.stride, padding=first.padding, dilation=first.dilation, groups=weight.shape[0]
    )

"""The RepNeXt network, its two forms, and ``reparameterize``."""
from __future__ import annotations

import copy
from typing import Literal

import torch
from torch import Tensor, nn

from .fusion import bn_affine, conv_with_input_affine, conv_with_output_affine
from .layers import ChunkConv, ChunkConvE, ConvNorm, CopyConv, CopyConvE, RepNextClassifier, fuse_module
from .registry import FORMS, Variant, get_variant

Form = Literal["train", "official", "fused"]
# "train": every branch and BatchNorm as trained. "official": the inference form of the
# official repository (branches merged, block/downsample BatchNorms kept). "fused": fully
# fused, no BatchNorm anywhere. Listed in the order a model can be converted.
def _channel_mixer(dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(ConvNorm(dim, hidden), nn.GELU(), ConvNorm(hidden, dim))


class MetaNeXtBlock(nn.Module):
    """``y = x + channel_mixer(norm(token_mixer(x)))``."""

    def __init__(self, dim: int, mlp_ratio: int, token_mixer: nn.Module) -> None:
        super().__init__()
        self.token_mixer = token_mixer
        self.norm: nn.Module = nn.BatchNorm2d(dim)
        self.channel_mixer = _channel_mixer(dim, dim * mlp_ratio)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.channel_mixer(self.norm(self.token_mixer(x)))

    def fold_norm(self) -> None:
        """Fold ``norm`` into the first 1x1 conv of the channel mixer (run after fusing)."""
        if isinstance(self.norm, nn.BatchNorm2d):
            self.channel_mixer[0] = conv_with_input_affine(*bn_affine(self.norm), self.channel_mixer[0])
            self.norm = nn.Identity()


class Downsample(nn.Module):
    """``t = norm(token_mixer(x)); y = t + channel_mixer(t)``: halves the resolution, doubles channels."""

    def __init__(self, dim: int, mlp_ratio: int, token_mixer: nn.Module) -> None:
        super().__init__()
        self.token_mixer = token_mixer
        self.norm: nn.Module = nn.BatchNorm2d(2 * dim)
        self.channel_mixer = _channel_mixer(2 * dim, 2 * dim * mlp_ratio)

    def forward(self, x: Tensor) -> Tensor:
        t = self.norm(self.token_mixer(x))
        return t + self.channel_mixer(t)

    def fold_norm(self) -> None:
        """Fold ``norm`` into the stride-2 convs that feed it (run after fusing)."""
        if isinstance(self.norm, nn.BatchNorm2d):
            scale, shift = bn_affine(self.norm)
            mixer = self.token_mixer
            if isinstance(mixer, nn.Conv2d):
                self.token_mixer = conv_with_output_affine(mixer, scale, shift)
            else:
                self.token_mixer = mixer.with_output_affine(scale, shift)
            self.norm = nn.Identity()


class Stem(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(ConvNorm(3, dim // 2, 3, 2, 1), nn.GELU(), ConvNorm(dim // 2, dim, 3, 2, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.stem(x)


class Stage(nn.Module):
    def __init__(self, downsample: nn.Module, blocks: nn.Sequential) -> None:
        super().__init__()
        self.downsample = downsample
        self.blocks = blocks

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(self.downsample(x))


class RepNeXt(nn.Module):
    """A RepNeXt network. ``form`` says which of ``FORMS`` it is in."""

    def __init__(self, variant: Variant, num_classes: int = 1000, distillation: bool = False) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        self.variant = variant
        self.num_classes = num_classes
        self.form: str = "train"
        dims, ratio = variant.embed_dims, variant.mlp_ratio
        is_e = variant.token_mixer == "e"
        self.stem = Stem(dims[0])
        stages = []
        for i, (dim, depth) in enumerate(zip(dims, variant.depths)):
            downsample: nn.Module = nn.Identity()
            if i > 0:
                previous = dims[i - 1]
                downsample = Downsample(previous, ratio, CopyConvE(previous) if is_e else CopyConv.build(previous))
            blocks = nn.Sequential(*(
                MetaNeXtBlock(dim, ratio, ChunkConvE(dim) if is_e else ChunkConv.build(dim)) for _ in range(depth)
            ))
            stages.append(Stage(downsample, blocks))
        self.stages = nn.Sequential(*stages)
        self.head_drop = nn.Dropout(0.0)
        self.head: nn.Module = RepNextClassifier(dims[-1], num_classes, distillation)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.stages(self.stem(x))

    def forward(self, x: Tensor) -> Tensor:
        x = self.forward_features(x).mean((2, 3))
        return self.head(self.head_drop(x))


def create_model(variant: str | Variant, form: Form = "train", num_classes: int = 1000) -> RepNeXt:
    """A RepNeXt with random weights, in eval mode, in the given form."""
    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}; choose one of {', '.join(FORMS)}")
    spec = variant if isinstance(variant, Variant) else get_variant(variant)
    return convert(RepNeXt(spec, num_classes).eval(), form)


def _fuse_children(module: nn.Module) -> None:
    for name, child in module.named_children():
        fused = fuse_module(child)
        if fused is child:
            _fuse_children(child)
        else:
            setattr(module, name, fused)


@torch.no_grad()
def _fuse_branches(model: RepNeXt) -> None:
    """train -> official, in place: every ConvNorm, multi-branch conv and the classifier
    merged; block and downsample BatchNorms and the 1x11/11x1 pair kept."""
    _fuse_children(model)
    model.form = "official"


@torch.no_grad()
def _fold_norms(model: RepNeXt) -> None:
    """official -> fused, in place: the remaining BatchNorms folded into neighbouring convs."""
    for module in model.modules():
        if isinstance(module, (MetaNeXtBlock, Downsample)):
            module.fold_norm()
    model.form = "fused"


def convert(model: RepNeXt, form: Form, inplace: bool = False) -> RepNeXt:
    """``model`` in ``form``: itself when already there, else a converted copy (or ``model``
    itself, converted, with ``inplace``).

    Conversion only goes forward (train -> official -> fused): fusion cannot be undone.
    """
    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}; choose one of {', '.join(FORMS)}")
    start, goal = FORMS.index(model.form), FORMS.index(form)
    if goal < start:
        raise ValueError(f"a {model.form} model cannot be turned back into the {form} form")
    if goal == start:
        return model
    result = model if inplace else copy.deepcopy(model)
    result.eval()
    if start == 0:
        _fuse_branches(result)
    if goal == 2:
        _fold_norms(result)
    return result


def reparameterize(model: RepNeXt) -> RepNeXt:
    """The fully fused form of ``model`` as a new module: one conv per branch group and no
    BatchNorm anywhere. ``model`` is left untouched; a fused model is returned as it is."""
    return convert(model, "fused")

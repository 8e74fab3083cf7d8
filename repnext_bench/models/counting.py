"""Parameter and multiply-accumulate counts, for any form and input size.

MACs count the multiplications of convolutions and linear layers (the convention of the
paper and of fvcore/thop); BatchNorm, GELU, additions and the pooling are not counted.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass(frozen=True)
class Counts:
    params: int
    macs: int
    per_module_macs: dict[str, int] = field(default_factory=dict)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _layer_macs(module: nn.Module, output: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return output.numel() * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return 0


@torch.no_grad()
def count(model: nn.Module, resolution: int | tuple[int, int] = 224, batch: int = 1) -> Counts:
    """Parameters and MACs of ``model`` for a ``batch`` of 3-channel images of ``resolution``.

    One image goes through the model with hooks on every conv and linear layer (on the meta
    device when the model is there); MACs grow linearly with the batch.
    """
    height, width = (resolution, resolution) if isinstance(resolution, int) else resolution
    parameter = next(model.parameters())
    per_module: dict[str, int] = {}
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            def hook(mod, _inputs, output, name=name):
                per_module[name] = per_module.get(name, 0) + batch * _layer_macs(mod, output)
            handles.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, 3, height, width, device=parameter.device, dtype=parameter.dtype))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return Counts(params=count_params(model), macs=sum(per_module.values()), per_module_macs=per_module)

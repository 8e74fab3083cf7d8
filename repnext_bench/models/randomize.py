"""Random BatchNorm statistics and biases, for checks that mean something.

A freshly built model has identity BatchNorms (mean 0, variance 1, weight 1, bias 0) and
zero biases, so a fusion check on it proves nothing about folding them; real checkpoints
are never like that."""
from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random running statistics and affine parameters in every BatchNorm and random biases in
    every conv and linear layer, in place; returns ``module`` in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=generator))
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=generator) * 1.5 + 0.5)
            m.weight.copy_(torch.rand(m.weight.shape, generator=generator) + 0.5)
            m.bias.copy_(torch.randn(m.bias.shape, generator=generator) * 0.5)
        elif isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
            m.bias.copy_(torch.randn(m.bias.shape, generator=generator) * 0.1)
    return module.eval()

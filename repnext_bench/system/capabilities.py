"""What a GPU and a case's precision allow, decided here once for every backend that runs on
an NVIDIA GPU (cuda, tensorrt, onnxruntime on cuda or tensorrt) and for the TensorRT export.

- TF32: ``fp32`` means fp32, so TF32 is switched off wherever the runtime lets it be; every
  other precision keeps the runtime's default, which allows TF32 (``auto``; and for fp16 or
  bf16, the layers that stay in fp32).
- bf16 needs compute capability 8.0 (Ampere) or newer: torch's ``is_bf16_supported`` also says
  yes to emulation on older GPUs.

torch is asked about the GPU (it is the CUDA binding every GPU backend has); it is imported
only inside these functions, so that importing this module imports no runtime.
"""
from __future__ import annotations


def cuda_problem() -> str | None:
    """Why torch cannot use a CUDA GPU here, or None."""
    import torch

    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build"
    if not torch.cuda.is_available():
        return f"no CUDA device is visible (torch {torch.__version__}, built for CUDA {torch.version.cuda})"
    return None


def ampere_or_newer(torch) -> bool:
    """Compute capability 8.0 on: TF32 tensor cores and native bf16."""
    return torch.cuda.get_device_capability()[0] >= 8


def has_tf32_cores() -> bool:
    """Whether GPU 0 has TF32 tensor cores (False where torch sees no CUDA GPU)."""
    if cuda_problem():
        return False
    import torch

    return ampere_or_newer(torch)


def bf16_problem(torch) -> str | None:
    """Why GPU 0 cannot run a bf16 case, or None."""
    if ampere_or_newer(torch):
        return None
    return f"{torch.cuda.get_device_name()} has no bf16 support"


def tf32_allowed(precision: str) -> bool:
    """Whether a case of ``precision`` lets the runtime use TF32: not for fp32 (fp32 means
    fp32); for the others the runtime's default (TF32 allowed) stands."""
    return precision != "fp32"


def gpu_precision(precision: str, tf32_cores: bool, tf32_switchable: bool = True) -> str:
    """The precision a GPU case of ``precision`` computes in: fp16 and bf16 as asked; fp32 and
    ``auto`` in TF32 where TF32 is allowed (or the runtime cannot switch it off:
    ``tf32_switchable``) and the GPU has TF32 cores, else fp32."""
    if precision in ("fp16", "bf16"):
        return precision
    tf32 = tf32_allowed(precision) or not tf32_switchable
    return "tf32" if tf32 and tf32_cores else "fp32"

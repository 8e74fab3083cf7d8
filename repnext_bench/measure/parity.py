"""How far a backend's output is from the PyTorch fp32 train-time reference on the same input."""
from __future__ import annotations

import numpy as np


def parity(output: np.ndarray, reference: np.ndarray) -> dict:
    """Relative L2 error, largest absolute error, and the share of images whose top-1 class agrees."""
    output = np.asarray(output, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if output.shape != reference.shape:
        raise ValueError(f"output shape {output.shape} differs from the reference's {reference.shape}")
    norm = np.linalg.norm(reference)
    return {
        "rel_l2": float(np.linalg.norm(output - reference) / norm) if norm > 0 else float(np.linalg.norm(output)),
        "max_abs": float(np.abs(output - reference).max()),
        "top1_agree": float((output.argmax(axis=1) == reference.argmax(axis=1)).mean()),
    }

"""INT8's error in numbers, from outputs on the evaluation inputs: top-1, the per-image errors,
and two cases compared on the same images with bootstrap CIs (run/evaluation.py makes the
outputs in a process of its own; the tables read the comparison)."""
from __future__ import annotations

import numpy as np


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((np.asarray(logits).argmax(axis=1) == labels).mean())


def per_image(outputs: np.ndarray, expected: np.ndarray) -> dict:
    """Per image: squared error, squared reference norm, and top-1 agreement; what a comparison
    of two cases on the same inputs resamples for its confidence interval."""
    outputs, expected = np.asarray(outputs, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    return {"sq_err": np.square(outputs - expected).sum(axis=1).tolist(),
            "sq_ref": np.square(expected).sum(axis=1).tolist(),
            "agree": (outputs.argmax(axis=1) == expected.argmax(axis=1)).astype(int).tolist()}


def paired_comparison(a: dict, b: dict, seed: int = 0, resamples: int = 2000) -> dict:
    """Case ``a`` against case ``b`` on the same evaluation inputs (their ``per_image``): the
    ratio of rel L2 errors a/b and the difference of top-1 agreement a-b, each with a 95%
    bootstrap CI over the images, resampled in pairs."""
    err_a, err_b, ref = (np.asarray(x, dtype=np.float64) for x in (a["sq_err"], b["sq_err"], a["sq_ref"]))
    agree_a, agree_b = np.asarray(a["agree"], dtype=np.float64), np.asarray(b["agree"], dtype=np.float64)
    picks = np.random.default_rng(seed).integers(0, len(ref), size=(resamples, len(ref)))

    def ratio(index):
        return np.sqrt(err_a[index].sum(axis=-1) / np.maximum(err_b[index].sum(axis=-1), 1e-300))

    ratios = ratio(picks)
    differences = agree_a[picks].mean(axis=1) - agree_b[picks].mean(axis=1)
    return {"rel_l2_ratio": float(ratio(np.arange(len(ref)))),
            "rel_l2_ratio_ci95": np.percentile(ratios, [2.5, 97.5]).tolist(),
            "top1_agree_difference": float(agree_a.mean() - agree_b.mean()),
            "top1_agree_difference_ci95": np.percentile(differences, [2.5, 97.5]).tolist(),
            "images": len(ref)}

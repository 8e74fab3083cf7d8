"""What INT8 costs in outputs: a case's output on the evaluation inputs against the PyTorch
fp32 train-time model's (rel L2, max abs, top-1 agreement), and with a labelled folder the
top-1 accuracy of both. The evaluation inputs: the ``--eval`` folder's images, else (INT8
cases) synthetic inputs of their own seed, apart from the calibration's."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..cases import Case
from ..measure.parity import parity
from .images import SYNTHETIC_EVAL_SIZE, eval_set, synthetic_inputs

_CHUNK = 16  # images per reference forward


@dataclass
class Evaluation:
    images: np.ndarray
    expected: np.ndarray  # the PyTorch fp32 train-time logits on them
    inputs: str  # "eval folder" or "synthetic"
    labels: np.ndarray | None = None
    folder: str | None = None
    class_map: str | None = None


def needs_evaluation(case: Case, settings) -> bool:
    return case.precision == "int8" or bool(settings.eval_dir)


def evaluation_inputs(case: Case, settings) -> Evaluation:
    """The evaluation inputs at the case's resolution and the reference's logits on them."""
    import torch

    from ..lifecycle import reference_model

    if settings.eval_dir:
        found = eval_set(Path(settings.eval_dir), Path(settings.class_map) if settings.class_map else None)
        images, labels = found.arrays(case.resolution), np.asarray(found.labels)
        extra = {"inputs": "eval folder", "labels": labels, "folder": settings.eval_dir, "class_map": found.class_map}
    else:
        images = synthetic_inputs(SYNTHETIC_EVAL_SIZE, case.resolution, settings.seed + 2)
        extra = {"inputs": "synthetic"}
    reference = reference_model(case.variant, settings).eval()
    with torch.inference_mode():
        expected = np.concatenate([reference(torch.from_numpy(images[i:i + _CHUNK])).numpy()
                                   for i in range(0, len(images), _CHUNK)])
    return Evaluation(images, expected, **extra)


def evaluate(session, evaluation: Evaluation, batch: int) -> dict:
    """{"parity": the case's output on the evaluation inputs against the reference's (with how
    many and which inputs), "accuracy": top-1 of both on a labelled folder, or None}."""
    outputs = session.predict(evaluation.images, batch)
    found = {"parity": {**parity(outputs, evaluation.expected), "images": len(evaluation.images),
                        "inputs": evaluation.inputs, "per_image": per_image(outputs, evaluation.expected)},
             "accuracy": None}
    if evaluation.labels is not None:
        found["accuracy"] = {"images": len(evaluation.labels), "top1": top1(outputs, evaluation.labels),
                             "reference_top1": top1(evaluation.expected, evaluation.labels),
                             "folder": evaluation.folder, "class_map": evaluation.class_map}
    return found


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

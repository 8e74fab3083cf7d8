"""What INT8 costs in outputs: a case's output on the evaluation inputs against the PyTorch
fp32 train-time model's (rel L2, max abs, top-1 agreement), and with a labelled folder the
top-1 accuracy of both. The evaluation inputs: the ``--eval`` folder's images, else (INT8
cases) synthetic inputs of their own seed, apart from the calibration's.

It runs in a process of its own after a sweep's rounds (so that neither its time nor its memory
shows in the case's figures), a chunk of images at a time, so that a large folder costs time,
not memory. The reference outputs on a folder are computed once and kept in the export cache."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.cases import Case
from ..measure.parity import parity
from ..quant.accuracy import per_image, top1
from ..quant.images import SYNTHETIC_EVAL_SIZE, EvalSet, eval_set, prepare_image, synthetic_inputs

CHUNK = 32  # images prepared and run at a time


def needs_evaluation(case: Case, settings) -> bool:
    return case.precision == "int8" or bool(settings.eval_dir)


@dataclass
class EvalInputs:
    """The evaluation inputs of a case: a labelled folder's images, or synthetic ones."""

    resolution: int
    folder: EvalSet | None = None
    seed: int = 0

    @property
    def count(self) -> int:
        return len(self.folder.paths) if self.folder else SYNTHETIC_EVAL_SIZE

    @property
    def kind(self) -> str:
        return "eval folder" if self.folder else "synthetic"

    def chunks(self) -> Iterator[np.ndarray]:
        if self.folder is None:
            yield synthetic_inputs(SYNTHETIC_EVAL_SIZE, self.resolution, self.seed + 2)
            return
        for start in range(0, self.count, CHUNK):
            yield np.stack([prepare_image(p, self.resolution) for p in self.folder.paths[start:start + CHUNK]])

    def identity(self) -> dict:
        if self.folder is None:
            return {"inputs": "synthetic", "count": SYNTHETIC_EVAL_SIZE, "seed": self.seed + 2}
        return {"inputs": "eval folder", "sha256": self.folder.identity()}


def eval_inputs(case: Case, settings) -> EvalInputs:
    if not settings.eval_dir:
        return EvalInputs(case.resolution, seed=settings.seed)
    found = eval_set(Path(settings.eval_dir), Path(settings.class_map) if settings.class_map else None,
                     settings.eval_size)
    return EvalInputs(case.resolution, found, settings.seed)


def reference_logits(case: Case, settings, inputs: EvalInputs, cache) -> np.ndarray:
    """The PyTorch fp32 train-time model's logits on the evaluation inputs, from the export
    cache when another case (or run) computed them with the same weights and inputs."""
    from ..export import weights_hash
    from .lifecycle import reference_model

    reference = reference_model(case.variant, settings).eval()
    key = {"variant": case.variant, "weights_sha256": weights_hash(reference), "resolution": case.resolution,
           **inputs.identity()}

    def create(path: Path) -> dict:
        import torch

        with torch.inference_mode():
            logits = [reference(torch.from_numpy(chunk)).numpy() for chunk in inputs.chunks()]
        np.save(path, np.concatenate(logits))
        return {"images": inputs.count}

    artifact = cache.get_or_create("eval-reference", key, "logits.npy", create)
    return np.load(artifact.path)


def evaluate_case(case: Case, settings) -> dict:
    """The case prepared afresh (its export reused from the cache), run over the evaluation
    inputs: {"parity": against the reference, with per-input figures, "accuracy": top-1 of both
    on a labelled folder, or None}."""
    from .lifecycle import open_case

    inputs = eval_inputs(case, settings)
    with open_case(case, settings) as loaded:
        expected = reference_logits(case, settings, inputs, loaded.context.cache)
        outputs = np.concatenate([loaded.session.predict(chunk, case.batch) for chunk in inputs.chunks()])
    found = {"parity": {**parity(outputs, expected), "images": inputs.count, "inputs": inputs.kind,
                        "per_image": per_image(outputs, expected)}, "accuracy": None}
    if inputs.folder is not None:
        labels = np.asarray(inputs.folder.labels)
        found["accuracy"] = {"images": inputs.count, "top1": top1(outputs, labels),
                             "reference_top1": top1(expected, labels), "folder": settings.eval_dir,
                             "class_map": inputs.folder.class_map}
    return found

"""Exactness as a gate: fused vs train-time in PyTorch, and each backend's output against the
PyTorch fp32 train-time model, with random BatchNorm statistics, each against the tolerance
of the precision that actually ran."""
from __future__ import annotations

from collections.abc import Callable, Iterator

from ..core.cases import Case
from .case_run import NOT_EVALUATED
from .lifecycle import Settings
from .sweep import CHECK_ONLY, run_cases

# relative L2 error allowed against the PyTorch fp32 train-time output, by effective precision
# INT8: on the evaluation inputs (run/evaluation.py); post-training quantization moves outputs by percents
TOLERANCES = {"fp32": 1e-4, "tf32": 5e-3, "fp16": 1e-2, "bf16": 5e-2, "int8": 1e-1}  # TF32: 10-bit mantissa
FUSION_TOLERANCE = 1e-5  # fused (and official) vs train-time, both fp32 in PyTorch


def fusion_checks(variants: list[str], resolution: int, batch: int, seed: int) -> Iterator[dict]:
    """Fused and official forms against the train-time form, in process, one record each."""
    import torch

    from ..measure.parity import parity
    from ..models import convert, create_model
    from ..models.randomize import randomize

    for variant in variants:
        torch.manual_seed(seed)
        reference = randomize(create_model(variant, "train"), seed)
        images = torch.randn(batch, 3, resolution, resolution, generator=torch.Generator().manual_seed(seed))
        with torch.inference_mode():
            expected = reference(images).numpy()
            for form in ("official", "fused"):
                error = parity(convert(reference, form)(images).numpy(), expected)
                yield {"check": "fusion", "case": f"{variant} {form} vs train (torch fp32, {resolution}px)",
                       "precision": "fp32", "parity": error, "tolerance": FUSION_TOLERANCE,
                       "ok": error["rel_l2"] <= FUSION_TOLERANCE, "error": None}


def backend_checks(cases: list[Case], settings: Settings, time_limit_s: float,
                   on_event: Callable[..., None] | None = None) -> Iterator[dict]:
    """Each case's output against the PyTorch fp32 train-time model, each case in its own process."""
    for result in run_cases(cases, settings, time_limit_s, CHECK_ONLY, on_event):
        label = result.label
        if result.status in ("skipped", "unavailable"):
            yield {"check": "backend", "case": label, "precision": None, "parity": None, "tolerance": None,
                   "ok": None, "error": f"{result.status}: {result.error}"}
            continue
        if not result.ok:
            yield {"check": "backend", "case": label, "precision": None, "parity": None, "tolerance": None,
                   "ok": False, "error": f"failed: {result.error}"}
            continue
        precision = result.precision_effective
        tolerance = TOLERANCES.get(precision)
        if result.case.precision == "int8" and result.parity.inputs == NOT_EVALUATED:
            yield {"check": "backend", "case": label, "precision": precision, "parity": None, "tolerance": tolerance,
                   "ok": False, "error": "its evaluation on the evaluation inputs did not run (see the note above)"}
            continue
        parity = {k: v for k, v in result.parity.to_dict().items() if k != "per_image"}
        calibration = (result.quantization.calibration or {}).get("source") if result.quantization else None
        yield {"check": "backend", "case": label, "precision": precision, "parity": parity, "calibration": calibration,
               "tolerance": tolerance, "ok": tolerance is not None and result.rel_l2 <= tolerance,
               "error": None if tolerance is not None else f"no tolerance for precision {precision!r}"}

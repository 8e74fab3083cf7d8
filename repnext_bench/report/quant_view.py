"""What INT8 cost, in lines under the results table: per INT8 case, the layers that ran INT8
(from the runtime's execution graph), the calibration, the parity against the fp32 train-time
model on the evaluation inputs, and train vs fused side by side; top-1 on a labelled folder."""
from __future__ import annotations

from dataclasses import replace

from rich.markup import escape

from ..core.records import Parity, Result, as_result
from ..quant.accuracy import paired_comparison
from .results import ratio_text


def calibration_text(calibration: dict | None) -> str:
    if not calibration:
        return "no calibration (weights only)"
    if calibration.get("source") == "synthetic":
        return f"calibration: synthetic ({calibration.get('size')} inputs)"
    return f"calibration: {calibration.get('size')} images of {calibration.get('folder')}"


def layers_text(layers: dict | None) -> str:
    if not layers:
        return ""
    return (f"{layers.get('int8', 0)} int8, {layers.get('float', 0)} float, {layers.get('qdq', 0)} "
            f"quantize/dequantize, {layers.get('reorder', 0)} reorder layers")


def parity_text(parity: Parity | dict | None) -> str:
    if not parity:
        return "no parity"
    if isinstance(parity, dict):
        parity = Parity.from_dict(parity)
    where = f" on {parity.images} {parity.inputs} inputs" if parity.images else ""
    return f"rel L2 {parity.rel_l2:.1e}, top-1 agreement {parity.top1_agree:.0%}{where}"


def speedup_text(result: Result) -> str:
    """INT8's speedup over the fp32 twin of the same sweep (paired, 95% CI), or nothing."""
    ratio = result.int8_speedup
    if not ratio:
        return ""
    slower = " (INT8 slower)" if ratio.clear and ratio.ratio < 1 else ""
    return f"INT8 speedup over fp32 {ratio_text(ratio)}{slower}; "


def quant_lines(results: list[Result | dict]) -> list[str]:
    results = [as_result(r) for r in results]
    lines = []
    for result in results:
        if result.ok and result.quantization:
            quant = result.quantization
            lines.append(f"[dim]{escape(result.label)}: {speedup_text(result)}"
                         f"{layers_text(quant.layers)}; {calibration_text(quant.calibration)}; "
                         f"{parity_text(result.parity)}[/]")
    lines.extend(_train_vs_fused(results))
    for result in results:
        if result.accuracy:
            accuracy = result.accuracy
            lines.append(f"top-1 on {accuracy.images} images of {escape(accuracy.folder or '--eval')}: "
                         f"{accuracy.top1:.1%} ({escape(result.label)}), fp32 train-time PyTorch "
                         f"{accuracy.reference_top1:.1%}")
    return lines


def _train_vs_fused(results: list[Result]) -> list[str]:
    """For each INT8 case measured in both forms: which form's quantization moved the outputs more."""
    lines = []
    by_case = {r.case: r for r in results if r.ok and r.case.precision == "int8" and r.parity}
    for case, fused in by_case.items():
        train = by_case.get(replace(case, form="train"))
        if case.form != "fused" or train is None:
            continue
        lines.append(f"INT8 error, fused vs train-time form ({escape(case.variant)} {case.backend}): rel L2 "
                     f"{fused.parity.rel_l2:.1e} vs {train.parity.rel_l2:.1e}, top-1 agreement "
                     f"{fused.parity.top1_agree:.0%} vs {train.parity.top1_agree:.0%}; {form_verdict(fused, train)}")
    return lines


MIN_INPUTS = 10  # fewer evaluation inputs make a bootstrap CI that looks sure and is not


def form_verdict(fused: Result, train: Result) -> str:
    """Whether quantizing the fused form moved the outputs more than quantizing the train-time
    form, with the 95% CI over the evaluation inputs; "no clear difference" when it holds 1."""
    a, b = fused.parity.per_image, train.parity.per_image
    if not (a and b) or fused.parity.inputs != train.parity.inputs or len(a["sq_err"]) != len(b["sq_err"]):
        return "not on the same evaluation inputs: no comparison"
    if len(a["sq_err"]) < MIN_INPUTS:
        return f"{len(a['sq_err'])} evaluation inputs: too few to compare (at least {MIN_INPUTS})"
    if not (any(a["sq_err"]) and any(b["sq_err"])):
        return "identical to the reference in " + ("both forms" if not any(a["sq_err"]) and not any(b["sq_err"])
                                                   else "one form: no ratio")
    found = paired_comparison(a, b)
    low, high = found["rel_l2_ratio_ci95"]
    verdict = ("fused hurts more" if low > 1 else "fused hurts less" if high < 1 else "no clear difference")
    d_low, d_high = (100 * x for x in found["top1_agree_difference_ci95"])
    return (f"error ratio fused/train {found['rel_l2_ratio']:.2f}x (95% CI {low:.2f}-{high:.2f}): {verdict}; "
            f"top-1 agreement difference {100 * found['top1_agree_difference']:+.0f} points "
            f"({d_low:+.0f} to {d_high:+.0f})")

"""Core ML: the fused or train-time model converted with coremltools, predicted on macOS with
the chosen compute units. The case's device is the compute units (all, cpu_only,
cpu_and_gpu, cpu_and_ne). Elsewhere the model is still converted and reported (conversion
time, size, op counts, precision) and the case is skipped: prediction needs macOS.

INT8 is 8-bit weight compression (export/coreml.py): ``linear`` by default, ``palettize`` with
the run option ``coreml_weights``; activations stay float."""
from __future__ import annotations

import platform

import numpy as np

from ..core.cases import Case
from ..export import INPUT_NAME, OUTPUT_NAME, Artifact
from ..export.coreml import COMPRESSIONS, FORMATS, PRECISIONS, export_coreml, import_coremltools, resolve_precision
from . import Availability, Backend, CaseSkipped, Description, PrepareContext, Prepared, Session

COMPUTE_UNITS = {"all": "ALL", "cpu_only": "CPU_ONLY", "cpu_and_gpu": "CPU_AND_GPU", "cpu_and_ne": "CPU_AND_NE"}
NOT_MACOS = "Core ML prediction needs macOS (this is {system}): the model was converted and is reported, not timed"
INT8_METHOD = "{method}: 8-bit weights (activations stay float)"


def weight_compression(case: Case) -> str:
    """The int8 weight compression a case asks for (run option ``coreml_weights``)."""
    return dict(case.options).get("coreml_weights") or COMPRESSIONS[0]


def quantization(info: dict) -> dict | None:
    """An INT8 model's quantization record: its compression method and the weight tensors it
    stores in 8 bits (``compressed_weights``), counted from the converted model. Its layers all
    compute in float (the weights are expanded), so none counts as an int8 kernel."""
    if "weight_compression" not in info:
        return None
    return {"method": INT8_METHOD.format(method=info["compression_method"]), "scheme": info["weight_compression"],
            "calibration": None, "compressed_weights": info["compressed_weights"],
            "layers": {"int8": 0, "float": info["ops_total"], "qdq": 0, "reorder": 0}}


class CoreMLSession(Session):
    def __init__(self, mlmodel, images: np.ndarray, compute_units: str, artifact: Artifact, version: str) -> None:
        self.inputs = {INPUT_NAME: np.ascontiguousarray(images, dtype=np.float32)}
        self._predict = mlmodel.predict
        self._out = None
        self.compute_units = compute_units
        self.info = artifact.info  # what the conversion found: format, target, precision
        self.version = version

    def run(self) -> None:
        self._out = self._predict(self.inputs)

    def output(self) -> np.ndarray:
        return np.asarray(self._out[OUTPUT_NAME], dtype=np.float32)

    def infer(self, images: np.ndarray) -> np.ndarray:
        found = self._predict({INPUT_NAME: np.ascontiguousarray(images, dtype=np.float32)})
        return np.asarray(found[OUTPUT_NAME], dtype=np.float32)

    def describe(self) -> Description:
        # Core ML does not say where each op ran; the Neural Engine computes in fp16 whatever
        # the program holds, so this is the program's precision, not a guarantee per unit
        found = quantization(self.info)
        facts = {"compute_units": COMPUTE_UNITS[self.compute_units], "model_format": self.info["model_format"],
                 "target": self.info["target"]}
        if found:  # the weights are int8; what computes is float
            facts["float_precision"] = self.info["compute_precision"]
        int8 = found is not None and found["compressed_weights"] > 0
        return Description("int8" if int8 else self.info["compute_precision"], self.compute_units, None,
                           {"coremltools": self.version, "macos": platform.mac_ver()[0]}, facts, found)


class CoreMLBackend(Backend):
    name = "coreml"
    devices = tuple(COMPUTE_UNITS)
    module = "coremltools"
    distribution = "coremltools"
    install = 'pip install "repnext-bench[coreml]"'
    # each format given is a case of its own; coreml_weights: the int8 weight compression
    # (linear or palettize; left out of a case's options means linear)
    run_options = ("coreml_format", "coreml_weights")

    def check_devices(self, found: Availability) -> Availability:
        if platform.system() == "Darwin":
            return found
        note = f"prediction needs macOS; on {platform.system()} it converts and reports the model, untimed"
        return Availability(**{**found.to_dict(), "note": note})

    def precisions_for(self, case: Case) -> tuple[str, ...]:
        return (*PRECISIONS[dict(case.options).get("coreml_format", FORMATS[0])], "auto")

    def unsupported(self, case: Case) -> str | None:
        compression = weight_compression(case)
        if compression not in COMPRESSIONS:
            return f"coreml_weights {compression} is not one of {', '.join(COMPRESSIONS)}"
        if compression != COMPRESSIONS[0] and case.precision != "int8":
            return f"coreml_weights {compression} compresses int8 weights, not {case.precision}"
        return super().unsupported(case)

    def prepare(self, model, case: Case, images: np.ndarray, context: PrepareContext) -> Prepared:
        model_format = dict(case.options).get("coreml_format", FORMATS[0])
        precision = resolve_precision(model_format, case.precision)
        artifact = export_coreml(model, case.batch, case.resolution, model_format, precision, context.cache,
                                 context.weights, weight_compression(case))
        if platform.system() != "Darwin":
            raise CaseSkipped(NOT_MACOS.format(system=platform.system()), artifact=artifact, exported=True)
        ct = import_coremltools()
        units = getattr(ct.ComputeUnit, COMPUTE_UNITS[case.device])
        mlmodel = ct.models.MLModel(str(artifact.path), compute_units=units)
        return Prepared(CoreMLSession(mlmodel, images, case.device, artifact, ct.__version__), artifact)

"""Core ML: the fused or train-time model converted with coremltools, predicted on macOS with
the chosen compute units. The case's device is the compute units (all, cpu_only,
cpu_and_gpu, cpu_and_ne). Elsewhere the model is still converted and reported (conversion
time, size, op counts, precision) and the case is skipped: prediction needs macOS."""
from __future__ import annotations

import platform

import numpy as np

from ..cases import Case
from ..export import INPUT_NAME, OUTPUT_NAME, Artifact
from ..export.coreml import FORMATS, PRECISIONS, export_coreml, import_coremltools, resolve_precision
from . import Availability, Backend, CaseSkipped, Description, PrepareContext, Prepared, Session

COMPUTE_UNITS = {"all": "ALL", "cpu_only": "CPU_ONLY", "cpu_and_gpu": "CPU_AND_GPU", "cpu_and_ne": "CPU_AND_NE"}
NOT_MACOS = "Core ML prediction needs macOS (this is {system}): the model was converted and is reported, not timed"


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

    def describe(self) -> Description:
        # Core ML does not say where each op ran; the Neural Engine computes in fp16 whatever
        # the program holds, so this is the program's precision, not a guarantee per unit
        return Description(self.info["compute_precision"], self.compute_units, None,
                           {"coremltools": self.version, "macos": platform.mac_ver()[0]},
                           {"compute_units": COMPUTE_UNITS[self.compute_units],
                            "model_format": self.info["model_format"], "target": self.info["target"]})


class CoreMLBackend(Backend):
    name = "coreml"
    devices = tuple(COMPUTE_UNITS)
    module = "coremltools"
    distribution = "coremltools"
    install = 'pip install "repnext-bench[coreml]"'
    run_options = ("coreml_format",)  # each format given is a case of its own

    def check_devices(self, found: Availability) -> Availability:
        if platform.system() == "Darwin":
            return found
        note = f"prediction needs macOS; on {platform.system()} it converts and reports the model, untimed"
        return Availability(**{**found.to_dict(), "note": note})

    def precisions_for(self, case: Case) -> tuple[str, ...]:
        return (*PRECISIONS[dict(case.options).get("coreml_format", FORMATS[0])], "auto")

    def prepare(self, model, case: Case, images: np.ndarray, context: PrepareContext) -> Prepared:
        model_format = dict(case.options).get("coreml_format", FORMATS[0])
        precision = resolve_precision(model_format, case.precision)
        artifact = export_coreml(model, case.batch, case.resolution, model_format, precision, context.cache,
                                 context.weights)
        if platform.system() != "Darwin":
            raise CaseSkipped(NOT_MACOS.format(system=platform.system()), artifact=artifact, exported=True)
        ct = import_coremltools()
        units = getattr(ct.ComputeUnit, COMPUTE_UNITS[case.device])
        mlmodel = ct.models.MLModel(str(artifact.path), compute_units=units)
        return Prepared(CoreMLSession(mlmodel, images, case.device, artifact, ct.__version__), artifact)

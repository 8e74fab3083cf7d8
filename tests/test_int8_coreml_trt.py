"""INT8 on Core ML (8-bit weight compression: linear or palettized, converted here on the saved
packages) and on TensorRT (explicit quantization of the symmetric QDQ ONNX), whose build plan,
engine build, cache key and layer count from the engine inspector are checked with fakes of
tensorrt: no GPU is needed."""
import json
import sys
from contextlib import nullcontext
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from repnext_bench.backends import CaseSkipped, PrepareContext, get_backend
from repnext_bench.backends.tensorrt_engine import QDQ, build_plan, export_tensorrt
from repnext_bench.backends.tensorrt_gpu import TensorRTBackend, TensorRTSession, datatype, engine_layers
from repnext_bench.core.cases import Case
from repnext_bench.export import Artifact, ExportCache, size_on_disk, weights_hash
from repnext_bench.models import convert, create_model, get_variant
from repnext_bench.quant.images import CalibrationSet
from repnext_bench.quant.layers import count_kinds, no_int8_reason

# --- Core ML -------------------------------------------------------------------------------

NARROW_M0 = replace(get_variant("M0"), embed_dims=(16, 32, 64, 128), depths=(1, 1, 1, 1))


@pytest.fixture(scope="module")
def coreml_int8(tmp_path_factory):
    """A narrow M0 fused at 64 px as an fp32 ML program and as int8 ML programs (linear,
    palettized). Every kind of layer is there, with tensors above and below the compression
    threshold; the full M0 would spend most of a minute in palettization's k-means."""
    pytest.importorskip("coremltools")
    from repnext_bench.export.coreml import export_coreml

    model = convert(create_model(NARROW_M0, "train", num_classes=10), "fused").eval()
    cache = ExportCache(tmp_path_factory.mktemp("cache"))
    made = {"fp32": export_coreml(model, 1, 64, "mlprogram", "fp32", cache),
            "linear": export_coreml(model, 1, 64, "mlprogram", "int8", cache),
            "palettize": export_coreml(model, 1, 64, "mlprogram", "int8", cache, compression="palettize")}
    return model, cache, made


def _big_weights(model, count: str = "tensors") -> int:
    """The Conv2d and Linear weights above coremltools' size threshold, those it compresses: how
    many tensors, or how many elements they hold."""
    from repnext_bench.export.coreml import WEIGHT_THRESHOLD

    sizes = [m.weight.numel() for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    big = [size for size in sizes if size > WEIGHT_THRESHOLD]
    return len(big) if count == "tensors" else sum(big)


def test_coreml_int8_compresses_the_weights_it_reports(coreml_int8):
    import coremltools as ct

    from repnext_bench.export.coreml import describe_spec

    model, _, made = coreml_int8
    convolutions = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    expected = {"linear": ("constexpr_affine_dequantize", "int8"),
                "palettize": ("constexpr_lut_to_dense", "palettized")}
    for compression, (op, weight_precision) in expected.items():
        info = made[compression].info
        spec = ct.models.MLModel(str(made[compression].path), skip_model_load=True).get_spec()  # read back
        described = describe_spec(spec)
        assert described == {k: info[k] for k in described}
        main = spec.mlProgram.functions["main"]
        ops = main.block_specializations[main.opset].operations
        assert info["compressed_weights"] == sum(o.type == op for o in ops) == _big_weights(model) > 0
        assert info["weight_precision"] == weight_precision and info["weight_compression"] == compression
        assert info["compute_precision"] == "fp32" and info["op_counts"]["conv"] == convolutions
        assert op not in info["op_counts"]  # weights, not computation
        assert made[compression].size_bytes == size_on_disk(made[compression].path)
        # 8-bit weights: three of each four bytes of a compressed tensor go, less a table of 256 floats
        # (palettize) or the scales (linear, fewer bytes) per tensor
        saved = made["fp32"].size_bytes - made[compression].size_bytes
        assert saved > 0.9 * (3 * _big_weights(model, "elements") - 256 * 4 * _big_weights(model)), compression
    assert made["fp32"].info["compressed_weights"] == 0 and made["fp32"].info["weight_precision"] == "fp32"
    assert len({artifact.key for artifact in made.values()}) == 3


def test_coreml_int8_is_cached_per_compression(coreml_int8):
    from repnext_bench.export.coreml import export_coreml

    model, cache, made = coreml_int8
    again = export_coreml(model, 1, 64, "mlprogram", "int8", cache, compression="linear")
    assert again.cache_hit and again.key == made["linear"].key and again.info == made["linear"].info
    with pytest.raises(ValueError, match="palettize applies to int8, not fp16"):
        export_coreml(model, 1, 64, "mlprogram", "fp16", cache, compression="palettize")
    with pytest.raises(ValueError, match="one of linear, palettize, not kmeans"):
        export_coreml(model, 1, 64, "mlprogram", "int8", cache, compression="kmeans")


def test_coreml_neural_network_int8_quantizes_every_layer(coreml_int8, tmp_path):
    from repnext_bench.export.coreml import export_coreml

    model, _, _ = coreml_int8
    cache = ExportCache(tmp_path)
    fp32 = export_coreml(model, 1, 64, "neuralnetwork", "fp32", cache)
    int8 = export_coreml(model, 1, 64, "neuralnetwork", "int8", cache)
    layers = sum(isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) for m in model.modules())
    assert int8.info["compressed_weights"] == layers and int8.info["weight_precision"] == "int8"
    assert fp32.info["compressed_weights"] == 0 and int8.size_bytes < 0.4 * fp32.size_bytes


def test_coreml_backend_takes_int8_and_the_compression_option():
    coreml = get_backend("coreml")
    assert "coreml_weights" in coreml.run_options
    case = Case("M0", "fused", "coreml", "all", "int8", 1, 64, 1, "latency",
                (("coreml_format", "mlprogram"), ("coreml_weights", "palettize")))
    assert "int8" in coreml.precisions_for(case) and coreml.unsupported(case) is None
    fp16 = Case(**{**case.__dict__, "precision": "fp16"})
    assert coreml.unsupported(fp16) == "coreml_weights palettize compresses int8 weights, not fp16"
    assert coreml.unsupported(Case(**{**fp16.__dict__, "options": (("coreml_format", "mlprogram"),)})) is None


def test_coreml_prepare_exports_the_asked_compression(coreml_int8, monkeypatch):
    from repnext_bench.backends import coreml as backend

    model, cache, made = coreml_int8
    monkeypatch.setattr(backend.platform, "system", lambda: "Linux")
    context = PrepareContext(cache, 17, weights_hash(model))
    for compression in ("linear", "palettize"):
        case = Case("M0", "fused", "coreml", "all", "int8", 1, 64, 1, "latency",
                    (("coreml_format", "mlprogram"), ("coreml_weights", compression)))
        with pytest.raises(CaseSkipped, match="prediction needs macOS") as skipped:
            get_backend("coreml").prepare(model, case, np.zeros((1, 3, 64, 64), np.float32), context)
        assert skipped.value.exported and skipped.value.artifact.key == made[compression].key


def test_coreml_session_describes_int8_weights_and_infers(coreml_int8):
    from repnext_bench.backends.coreml import CoreMLSession

    _, _, made = coreml_int8
    calls = []

    def predict(inputs):
        calls.append(inputs["images"])
        return {"logits": inputs["images"].reshape(len(inputs["images"]), -1)[:, :4].astype(np.float64)}

    mlmodel = SimpleNamespace(predict=predict)
    session = CoreMLSession(mlmodel, np.zeros((2, 3, 8, 8), np.float32), "cpu_and_ne", made["palettize"], "9.0")
    described = session.describe()
    info = made["palettize"].info
    assert described.precision_effective == "int8" and described.facts["float_precision"] == "fp32"
    quantization = described.quantization
    assert "8-bit weights (activations stay float)" in quantization["method"] and "palettize" in quantization["method"]
    # 8-bit weights, float compute: the compressed tensors are counted, no layer as an int8 kernel
    assert quantization["compressed_weights"] == info["compressed_weights"] > 0
    assert quantization["layers"] == {"int8": 0, "float": info["ops_total"], "qdq": 0, "reorder": 0}
    images = np.arange(2 * 3 * 8 * 8, dtype=np.float32).reshape(2, 3, 8, 8)
    logits = session.infer(images)
    assert logits.dtype == np.float32 and np.array_equal(logits, images.reshape(2, -1)[:, :4])
    plain = CoreMLSession(mlmodel, np.zeros((1, 3, 8, 8), np.float32), "all", made["fp32"], "9.0").describe()
    assert plain.quantization is None and plain.precision_effective == "fp32"


# --- TensorRT (faked) ------------------------------------------------------------------------


def fake_tensorrt(version: str, int8_flag: bool = True, strongly_typed: bool = True):
    """The attributes build_plan and export_tensorrt use, as a TensorRT release of ``version``
    has them; the builder records what it was asked."""
    built = SimpleNamespace(creation=None, set=[], cleared=[], verbosity=None, parsed=None)

    class Config:
        def set_flag(self, flag):
            built.set.append(flag)

        def clear_flag(self, flag):
            built.cleared.append(flag)

        def __setattr__(self, name, value):
            assert name == "profiling_verbosity"
            built.verbosity = value

        add_optimization_profile = set_timing_cache = lambda self, *args: None  # noqa: E731
        create_timing_cache = lambda self, data: "timings"  # noqa: E731
        get_timing_cache = lambda self: SimpleNamespace(serialize=lambda: b"timing")  # noqa: E731

    class Parser:
        def __init__(self, network, logger):
            self.num_errors = 0

        def parse(self, data):
            built.parsed = data
            return True

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            built.creation = flags
            return "network"

        create_builder_config = lambda self: Config()  # noqa: E731
        create_optimization_profile = lambda self: SimpleNamespace(set_shape=lambda *a: None)  # noqa: E731
        build_serialized_network = lambda self, network, config: b"engine"  # noqa: E731

    flags = {"FP16": "FP16", "BF16": "BF16", "TF32": "TF32", **({"INT8": "INT8"} if int8_flag else {})}
    logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})
    creation = SimpleNamespace(EXPLICIT_BATCH=0, **({"STRONGLY_TYPED": 1} if strongly_typed else {}))
    return SimpleNamespace(__version__=version, NetworkDefinitionCreationFlag=creation,
                           BuilderFlag=SimpleNamespace(**flags),
                           ProfilingVerbosity=SimpleNamespace(DETAILED="DETAILED"),
                           Logger=logger, Builder=Builder, OnnxParser=Parser,
                           LayerInformationFormat=SimpleNamespace(JSON="JSON"), built=built)


@pytest.mark.parametrize("version,int8_flag,strongly,expected", [
    ("8.6.1", True, False, (1, ["INT8"], QDQ, "weak")),    # explicit batch flag, INT8 builder flag
    ("10.5.0", True, True, (0, ["INT8"], QDQ, "weak")),    # flags still current
    ("10.12.0", True, True, (2, [], QDQ, "strong")),       # flags deprecated: strongly typed QDQ network
    ("11.0.0", False, True, (2, [], QDQ, "strong")),       # flags gone
])
def test_tensorrt_int8_plan_parses_the_qdq_onnx(version, int8_flag, strongly, expected):
    assert build_plan(fake_tensorrt(version, int8_flag, strongly), "int8") == expected


def test_tensorrt_int8_is_refused_without_flag_or_strong_typing():
    with pytest.raises(ValueError, match="TensorRT 8.5.3 has no int8"):
        build_plan(fake_tensorrt("8.5.3", int8_flag=False, strongly_typed=False), "int8")
    assert "int8" in TensorRTBackend.precisions


@pytest.fixture
def fake_build(monkeypatch, tmp_path):
    """export_tensorrt with tensorrt, the GPU and the ONNX exports faked: the QDQ export's key
    holds the calibration's identity, as quant.onnx_qdq's does."""
    from repnext_bench.quant import onnx_qdq

    asked = []

    def onnx(kind, content):
        def make(model, resolution, opset, cache, weights, calibration=None, symmetric=False, dtype="fp32"):
            asked.append((kind, calibration, symmetric))
            key = {"kind": kind, "weights": weights, "resolution": resolution, "dtype": dtype,
                   **(calibration.identity() if calibration else {})}
            info = {"quantization": "QDQ method", "scheme": "s8s8", "calibration": calibration.describe()} \
                if calibration else {}
            return cache.get_or_create(kind, key, "model.onnx", lambda path: (path.write_bytes(content), info)[1])
        return make

    monkeypatch.setattr(onnx_qdq, "quantized_onnx", onnx("onnx-int8", b"qdq onnx"))
    monkeypatch.setattr("repnext_bench.backends.tensorrt_engine.export_onnx", onnx("onnx", b"fp32 onnx"))
    gpu = SimpleNamespace(name="Fake GPU", major=9, minor=0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: gpu)
    model = SimpleNamespace(variant=SimpleNamespace(name="M0"), form="fused")
    cache = ExportCache(tmp_path / "cache")

    def build(version, precision, calibration=None):
        trt = fake_tensorrt(version)
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        artifact = export_tensorrt(model, 1, 64, precision, 17, cache, "weights", calibration)
        return artifact, trt.built

    return build, asked


def test_tensorrt_int8_build_and_cache_key(fake_build):
    build, asked = fake_build
    int8, built = build("10.5.0", "int8")
    assert asked[-1] == ("onnx-int8", CalibrationSet(None), True)  # symmetric QDQ, the default calibration
    assert built.parsed == b"qdq onnx" and built.set == ["INT8"] and built.cleared == ["TF32"]
    assert built.verbosity == "DETAILED" and built.creation == 0
    assert int8.info["typing"] == "weak" and int8.info["onnx_dtype"] == QDQ
    assert int8.info["quantization"] == "QDQ method" and int8.info["calibration"]["source"] == "synthetic"
    key = json.loads((int8.path.parent / "key.json").read_text())
    assert key["onnx_key"] == int8.info["onnx"]["cache_key"] and key["precision"] == "int8"

    again, built = build("10.5.0", "int8", CalibrationSet(None))
    assert again.cache_hit and again.key == int8.key and built.creation is None  # no second build
    other, _ = build("10.5.0", "int8", CalibrationSet(None, size=8))  # another calibration, another engine
    assert not other.cache_hit and other.key != int8.key

    strong, built = build("10.12.0", "int8")
    assert built.creation == 2 and built.set == [] and built.verbosity == "DETAILED" and strong.key != int8.key
    fp32, built = build("10.5.0", "fp32")
    assert built.parsed == b"fp32 onnx" and built.set == [] and built.verbosity is None
    assert fp32.key != int8.key and "quantization" not in fp32.info


# An engine inspector's JSON (ProfilingVerbosity.DETAILED) of a small QDQ network, in the form
# TensorRT documents: each layer's name (fused nodes joined by " + "), type, and the format and
# datatype of its inputs and outputs
INSPECTOR = {"Layers": [
    {"Name": "Reformatting CopyNode for Input Tensor 0 to images_QuantizeLinear", "LayerType": "Reformat",
     "Inputs": [{"Name": "images", "Location": "Device", "Dimensions": [1, 3, 64, 64],
                 "Format/Datatype": "Row major linear FP32"}],
     "Outputs": [{"Name": "Reformatted Input Tensor 0", "Location": "Device", "Dimensions": [1, 3, 64, 64],
                  "Format/Datatype": "Channel major FP32 format where channel % 4 == 0"}]},
    {"Name": "images_QuantizeLinear", "LayerType": "Scale",
     "Inputs": [{"Name": "images", "Format/Datatype": "Channel major FP32 format where channel % 4 == 0"}],
     "Outputs": [{"Name": "images_quantized",
                  "Format/Datatype": "Four wide channel vectorized row major Int8 format"}]},
    {"Name": "stem.0.weight_DequantizeLinear + /stem/stem.0/Conv + /stem/stem.1/Gelu",
     "LayerType": "CaskConvolution",
     "Inputs": [{"Name": "images_quantized", "Dimensions": [1, 3, 64, 64],
                 "Format/Datatype": "Four wide channel vectorized row major Int8 format"}],
     "Outputs": [{"Name": "/stem/stem.1/Gelu_output_0", "Dimensions": [1, 20, 32, 32],
                  "Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format."}],
     "ParameterType": "Convolution", "Kernel": [3, 3], "Weights": {"Type": "Int8", "Count": 540},
     "Bias": {"Type": "Float", "Count": 20}, "TacticValue": "0x0000000000000001"},
    {"Name": "/stages.0/Add + /stages.0/Add_output_0_QuantizeLinear", "LayerType": "PointWiseV2",
     "Inputs": [{"Name": "a", "Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format."},
                {"Name": "b", "Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format."}],
     "Outputs": [{"Name": "c", "Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format."}]},
    {"Name": "/head/GlobalAveragePool_output_0_DequantizeLinear", "LayerType": "Scale",
     "Inputs": [{"Name": "c", "Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format."}],
     "Outputs": [{"Name": "d", "Format/Datatype": "Row major linear FP32"}]},
    {"Name": "/head/ReduceMean", "LayerType": "CaskPooling",
     "Inputs": [{"Name": "d", "Format/Datatype": "Row major linear FP32"}],
     "Outputs": [{"Name": "e", "Format/Datatype": "Row major linear FP32"}]},
    {"Name": "/head/Flatten", "LayerType": "Shuffle",
     "Inputs": [{"Name": "e", "Format/Datatype": "Row major linear FP32"}],
     "Outputs": [{"Name": "f", "Format/Datatype": "Row major linear FP32"}]},
    {"Name": "head.weight + /head/Gemm", "LayerType": "CaskGemmConvolution",
     "Inputs": [{"Name": "f", "Format/Datatype": "Float"}],
     "Outputs": [{"Name": "logits", "Format/Datatype": "Float"}]},
    {"Name": "shape_tensor", "LayerType": "NoOp", "Inputs": [], "Outputs": []},
], "Bindings": ["images", "logits"]}


def test_inspector_layers_are_counted_by_the_datatype_they_run():
    assert datatype("Thirty-two wide channel vectorized row major Int8 format.") == "int8"
    assert datatype("Row major linear FP16 format") == datatype("Half") == "fp16"
    assert datatype("Float") == datatype("Row major linear FP32") == "fp32"
    assert datatype("N/A due to dynamic shapes") is None
    layers = engine_layers(json.dumps(INSPECTOR))
    assert layers == [("Reorder", None), ("QuantizeLinear", None), ("CaskConvolution", "int8"), ("PointWiseV2", "int8"),
                      ("QuantizeLinear", None), ("CaskPooling", "fp32"), ("Reorder", None),
                      ("CaskGemmConvolution", "fp32"), ("Constant", None)]
    assert count_kinds(layers) == {"int8": 2, "float": 2, "qdq": 2, "reorder": 2}
    names_only = json.dumps({"Layers": [layer["Name"] for layer in INSPECTOR["Layers"]], "Bindings": []})
    with pytest.raises(RuntimeError, match="not built with detailed profiling verbosity"):
        engine_layers(names_only)


def _fake_session(information: str, typing: str = "weak") -> TensorRTSession:
    """A TensorRTSession over a fake engine whose inspector gives ``information``."""
    properties = SimpleNamespace(name="Fake GPU", major=9, minor=0, total_memory=16 * 2**30)
    session = object.__new__(TensorRTSession)
    session._torch = SimpleNamespace(__version__="2.x", version=SimpleNamespace(cuda="12.x"),
                                     cuda=SimpleNamespace(get_device_properties=lambda i: properties,
                                                          get_device_capability=lambda: (9, 0),
                                                          stream=lambda s: nullcontext()),
                                     from_numpy=torch.from_numpy)
    session._trt = fake_tensorrt("10.5.0")
    inspector = SimpleNamespace(get_engine_information=lambda fmt: information if fmt == "JSON" else "")
    session.engine = SimpleNamespace(create_engine_inspector=lambda: inspector)
    session.precision, session.typing, session.options, session.quantization = "int8", typing, {}, None
    return session


def test_tensorrt_session_reads_its_int8_layers():
    session = _fake_session(json.dumps(INSPECTOR))
    info = {"quantization": "QDQ method", "scheme": "s8s8", "calibration": {"source": "synthetic", "size": 128}}
    session.read_layers(Artifact(None, 0, "key", False, 0.0, info))
    described = session.describe()
    assert described.precision_effective == "int8" and described.facts["float_precision"] == "fp32"
    assert described.quantization == {"method": "QDQ method; TensorRT explicit quantization (weakly typed)",
                                      "scheme": "s8s8", "calibration": info["calibration"],
                                      "layers": {"int8": 2, "float": 2, "qdq": 2, "reorder": 2}}


def test_tensorrt_session_infers_other_inputs():
    session = _fake_session("{}")
    session.stream = SimpleNamespace(cuda_stream=7)
    session.x, session.out = torch.zeros((2, 3, 4, 4)), torch.zeros((2, 5), dtype=torch.float16)

    def execute(handle):
        assert handle == 7
        session.out.copy_(session.x.reshape(2, -1)[:, :5])
        return True

    session.context = SimpleNamespace(execute_async_v3=execute)
    images = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    logits = session.infer(images)
    assert logits.dtype == np.float32 and np.allclose(logits, images.reshape(2, -1)[:, :5], atol=1e-2)


def test_tensorrt_int8_case_without_int8_layers_is_skipped(monkeypatch, tmp_path):
    """prepare passes the calibration set to the build and skips the case (with its artifact)
    where the engine ran no layer in INT8."""
    from repnext_bench.backends import tensorrt_engine as trt_export
    from repnext_bench.backends import tensorrt_gpu

    floats = {"Layers": [layer for layer in INSPECTOR["Layers"] if "Int8" not in json.dumps(layer)]}
    artifact = Artifact(tmp_path / "model.engine", 6, "key", False, 0.0,
                        {"precision": "int8", "typing": "weak", "quantization": "QDQ method"})
    artifact.path.write_bytes(b"engine")
    asked = []
    monkeypatch.setattr(trt_export, "export_tensorrt", lambda *args: asked.append(args) or artifact)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda: None)
    monkeypatch.setattr(tensorrt_gpu, "TensorRTSession", lambda *args: _fake_session(json.dumps(floats)))
    calibration = CalibrationSet(None, size=16)
    context = PrepareContext(ExportCache(tmp_path / "cache"), 17, "weights", calibration=calibration)
    case = Case("M0", "fused", "tensorrt", "cuda", "int8", 1, 64, 1, "latency")
    with pytest.raises(CaseSkipped, match="TensorRT ran no layer in INT8") as skipped:
        TensorRTBackend().prepare(SimpleNamespace(num_classes=1000), case, np.zeros((1, 3, 64, 64), np.float32),
                                  context)
    assert skipped.value.artifact is artifact and asked[0][-1] == calibration
    assert no_int8_reason("TensorRT", count_kinds(engine_layers(json.dumps(INSPECTOR)))) is None

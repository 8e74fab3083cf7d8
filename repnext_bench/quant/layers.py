"""Which layers really ran INT8, read from the runtime's own execution graph (ONNX Runtime's
optimized graph, OpenVINO's runtime model) or profile, never assumed from what was asked.

Each layer falls in one of four kinds: ``int8`` (an integer kernel: QLinearConv, a u8/i8
convolution...), ``qdq`` (a QuantizeLinear/DequantizeLinear or FakeQuantize left standing: the
cost of moving between int8 and float), ``reorder`` (a layout or precision reorder the runtime
inserted) and ``float`` (everything else: what fell back to, or stayed in, floating point)."""
from __future__ import annotations

from collections import Counter

KINDS = ("int8", "float", "qdq", "reorder")
INT8_PRECISIONS = {"i8", "u8", "int8", "uint8"}
_QDQ_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "FakeQuantize"}
_INT8_OPS = {"QGemm", "ConvInteger", "MatMulInteger", "MatMulIntegerToFloat", "QAttention"}
_REORDER_OPS = {"Reorder", "ReorderInput", "ReorderOutput", "Transpose"}
_NOT_LAYERS = {"Const", "Constant", "Input", "Output", "Parameter", "Result"}


def layer_kind(op_type: str, precision: str | None = None) -> str | None:
    """The kind of one layer from its op type and, where the runtime says it, the precision it
    ran in; None for what is not a layer (constants, inputs, outputs)."""
    if op_type in _NOT_LAYERS:
        return None
    if op_type in _QDQ_OPS:
        return "qdq"
    if op_type in _REORDER_OPS:
        return "reorder"
    if op_type.startswith("QLinear") or op_type in _INT8_OPS or (precision or "").lower() in INT8_PRECISIONS:
        return "int8"
    return "float"


def count_kinds(layers: list[tuple[str, str | None]]) -> dict[str, int]:
    """{kind: how many layers} over (op type, precision) pairs, every kind present (0 if none)."""
    found = Counter(kind for kind in (layer_kind(op, precision) for op, precision in layers) if kind)
    return {kind: found.get(kind, 0) for kind in KINDS}


def onnx_layers(path) -> list[tuple[str, str | None]]:
    """(op type, None) for each node of an ONNX graph (ONNX Runtime's optimized graph, saved at load)."""
    import onnx

    return [(node.op_type, None) for node in onnx.load(str(path), load_external_data=False).graph.node]


def openvino_layers(compiled) -> list[tuple[str, str | None]]:
    """(layer type, runtime precision) for each layer of OpenVINO's compiled (runtime) model that
    runs per inference: those that depend on the input. Layers fed by constants alone (weight
    reorders and reshapes) run once, at compile time, and are left out."""
    found, live = [], set()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        kind = info["layerType"].astype(str) if "layerType" in info else op.get_type_name()
        sources = [port.get_source_output().get_node().get_friendly_name() for port in op.inputs()]
        if kind != "Input" and not any(source in live for source in sources):
            continue
        live.add(op.get_friendly_name())
        precision = info["runtimePrecision"].astype(str) if "runtimePrecision" in info else None
        found.append((kind, precision))
    return found


def no_int8_reason(runtime: str, counts: dict[str, int]) -> str | None:
    """Why an INT8 case must be skipped: its runtime ran no layer in INT8 here; None when some did."""
    if counts["int8"]:
        return None
    return (f"{runtime} ran no layer in INT8 on this machine (its execution graph: {counts['float']} float, "
            f"{counts['qdq']} quantize/dequantize, {counts['reorder']} reorder layers)")

"""torch -> ONNX export, with a content-addressed cache of the artifacts (ONNX here; Core ML,
OpenVINO IR and TensorRT engines in this package's other modules).

The cache key holds everything an artifact depends on: variant, form, a hash of the weights,
the input shape, the opset, and the exporter and torch versions. Later runs with the same
key reuse the artifact. Where the cache lives: ``--cache-dir``, else ``REPNEXT_BENCH_CACHE``,
else the user's cache directory (``$XDG_CACHE_HOME/repnext-bench`` or ``~/.cache/repnext-bench``).
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from ..system.cache_dir import CACHE_ENV, default_cache_dir  # noqa: F401  (re-exported: the export cache's home)

if TYPE_CHECKING:  # torch is imported where it is used: the command line starts without it
    import torch



DEFAULT_OPSET = 17


def onnx_max_opset() -> int:
    """The newest opset the TorchScript-based exporter writes (torch keeps it in a private module)."""
    try:
        from torch.onnx import _constants
    except ImportError:
        return DEFAULT_OPSET
    return getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", DEFAULT_OPSET)


def opset_problem(opset: int) -> str | None:
    """Why ``--opset`` cannot be exported, or None; torch is asked only above the default."""
    if 7 <= opset <= DEFAULT_OPSET:
        return None
    if opset < 7:
        return (f"--opset {opset} is not valid: use 7 or above, up to the newest opset this torch exports "
                f"({DEFAULT_OPSET} is the default)")
    highest = onnx_max_opset()
    if opset <= highest:
        return None
    return f"--opset {opset} is not valid: use 7 to {highest} ({DEFAULT_OPSET} is the default)"


EXPORTER = "torch.onnx (TorchScript-based)"
INPUT_NAME, OUTPUT_NAME = "images", "logits"


def weights_hash(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def size_on_disk(path: Path) -> int:
    """Bytes of a file, or of every file under a folder (a Core ML package is a folder)."""
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


@dataclass(frozen=True)
class Artifact:
    path: Path
    size_bytes: int
    key: str
    cache_hit: bool
    export_s: float  # 0 when reused from the cache
    info: dict = field(default_factory=dict)  # what the exporter learned (op counts, precision, ...)

    def describe(self) -> dict:
        return {"path": str(self.path), "size_bytes": self.size_bytes, "cache_key": self.key,
                "cache_hit": self.cache_hit, "export_s": round(self.export_s, 4), **self.info}


class ExportCache:
    """Artifacts by content key. Disabled, it writes into a temporary folder it removes on close."""

    def __init__(self, root: Path | None = None, enabled: bool = True) -> None:
        self.enabled = enabled
        self.root = (root or default_cache_dir()) if enabled else Path(tempfile.mkdtemp(prefix="repnext-bench-"))

    def close(self) -> None:
        if not self.enabled:
            shutil.rmtree(self.root, ignore_errors=True)

    def get_or_create(self, kind: str, key_fields: dict, filename: str,
                      create: Callable[[Path], dict | None]) -> Artifact:
        """The artifact ``filename`` (a file or a folder) for ``key_fields``: reused when the
        cache has it, else made by ``create(path)``, whose returned facts are kept beside it."""
        key = hashlib.sha256(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()
        folder = self.root / kind / key[:24]
        target = folder / filename
        if target.exists() and (folder / "key.json").is_file():
            info = json.loads((folder / "info.json").read_text()) if (folder / "info.json").is_file() else {}
            return Artifact(target, size_on_disk(target), key, True, 0.0, info)
        (self.root / kind).mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root / kind))
        try:
            start = time.perf_counter()
            info = create(staging / filename) or {}
            elapsed = time.perf_counter() - start
            (staging / "info.json").write_text(json.dumps(info, indent=2, sort_keys=True))
            (staging / "key.json").write_text(json.dumps(key_fields, indent=2, sort_keys=True))
            try:
                os.rename(staging, folder)  # atomic: a reader sees all of the folder or none
            except OSError:  # another process finished the same key first: use theirs
                if not target.exists():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return Artifact(target, size_on_disk(target), key, False, elapsed, info)


def source_key(variant: str, form: str, weights: str, input_shape: list) -> dict:
    """The key fields every artifact of a model shares: what model, which weights, what input."""
    import torch

    return {"variant": variant, "form": form, "weights_sha256": weights, "input_shape": input_shape,
            "torch": torch.__version__, "repnext_bench": __version__}


def onnx_key(variant: str, form: str, weights: str, resolution: int, opset: int, dtype: str = "fp32") -> dict:
    key = {"format": "onnx", **source_key(variant, form, weights, ["batch", 3, resolution, resolution]),
           "opset": opset, "exporter": EXPORTER}
    if dtype != "fp32":  # fp32 keys stay as they were, so existing caches still hit
        key["dtype"] = dtype
    return key


def op_counts(path: Path) -> dict:
    """The ONNX graph's node types and how many of each (constants left out, as for the other formats)."""
    from collections import Counter

    import onnx

    ops = Counter(node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node
                  if node.op_type != "Constant")
    return {"op_counts": dict(ops.most_common()), "ops_total": sum(ops.values())}


ONNX_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}  # names in torch


def export_onnx(model: torch.nn.Module, resolution: int, opset: int, cache: ExportCache,
                weights: str | None = None, dtype: str = "fp32") -> Artifact:
    """The model as ONNX with a dynamic batch axis: input ``images``, output ``logits``; fp32
    unless ``dtype`` asks for a typed fp16/bf16 graph (for TensorRT's strongly typed builds)."""
    key = onnx_key(model.variant.name, model.form, weights or weights_hash(model), resolution, opset, dtype)

    def create(path: Path) -> dict:
        import torch

        kind = getattr(torch, ONNX_DTYPES[dtype])
        example = torch.zeros(1, 3, resolution, resolution, dtype=kind)
        typed = model if kind is torch.float32 else copy.deepcopy(model).to(kind)
        with warnings.catch_warnings():  # the TorchScript exporter is deprecated but needs no extra packages
            warnings.simplefilter("ignore")
            torch.onnx.export(
                typed.eval(), (example,), str(path), dynamo=False, opset_version=opset,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            )
        return op_counts(path)

    return cache.get_or_create("onnx", key, "model.onnx", create)

"""torch -> ONNX export, with a content-addressed cache of the artifacts.

The cache key holds everything the file depends on: variant, form, a hash of the weights,
the input shape, the opset, and the exporter and torch versions. Later runs with the same
key reuse the file. Where the cache lives: ``--cache-dir``, else ``REPNEXT_BENCH_CACHE``,
else the user's cache directory (``$XDG_CACHE_HOME/repnext-bench`` or ``~/.cache/repnext-bench``).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from . import __version__

CACHE_ENV = "REPNEXT_BENCH_CACHE"
EXPORTER = "torch.onnx (TorchScript-based)"
INPUT_NAME, OUTPUT_NAME = "images", "logits"


def default_cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "repnext-bench"


def weights_hash(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Artifact:
    path: Path
    size_bytes: int
    key: str
    cache_hit: bool
    export_s: float  # 0 when reused from the cache

    def describe(self) -> dict:
        return {"path": str(self.path), "size_bytes": self.size_bytes, "cache_key": self.key,
                "cache_hit": self.cache_hit, "export_s": round(self.export_s, 4)}


class ExportCache:
    """Artifacts by content key. Disabled, it writes into a temporary folder it removes on close."""

    def __init__(self, root: Path | None = None, enabled: bool = True) -> None:
        self.enabled = enabled
        self.root = (root or default_cache_dir()) if enabled else Path(tempfile.mkdtemp(prefix="repnext-bench-"))

    def close(self) -> None:
        if not self.enabled:
            shutil.rmtree(self.root, ignore_errors=True)

    def get_or_create(self, kind: str, key_fields: dict, filename: str,
                      create: Callable[[Path], None]) -> Artifact:
        key = hashlib.sha256(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()
        folder = self.root / kind / key[:24]
        target = folder / filename
        if target.is_file():
            return Artifact(target, target.stat().st_size, key, True, 0.0)
        (self.root / kind).mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root / kind))
        try:
            start = time.perf_counter()
            create(staging / filename)
            elapsed = time.perf_counter() - start
            (staging / "key.json").write_text(json.dumps(key_fields, indent=2, sort_keys=True))
            try:
                os.rename(staging, folder)  # atomic: a reader sees all of the folder or none
            except OSError:  # another process finished the same key first: use theirs
                if not target.is_file():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return Artifact(target, target.stat().st_size, key, False, elapsed)


def onnx_key(variant: str, form: str, weights: str, resolution: int, opset: int) -> dict:
    return {
        "format": "onnx",
        "variant": variant,
        "form": form,
        "weights_sha256": weights,
        "input_shape": ["batch", 3, resolution, resolution],
        "opset": opset,
        "exporter": EXPORTER,
        "torch": torch.__version__,
        "repnext_bench": __version__,
    }


def export_onnx(model: torch.nn.Module, resolution: int, opset: int, cache: ExportCache,
                weights: str | None = None) -> Artifact:
    """The model (fp32) as ONNX with a dynamic batch axis: input ``images``, output ``logits``."""
    key = onnx_key(model.variant.name, model.form, weights or weights_hash(model), resolution, opset)

    def create(path: Path) -> None:
        example = torch.zeros(1, 3, resolution, resolution)
        with warnings.catch_warnings():  # the TorchScript exporter is deprecated but needs no extra packages
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model.eval(), (example,), str(path), dynamo=False, opset_version=opset,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            )

    return cache.get_or_create("onnx", key, "model.onnx", create)

"""What every process lifetime of a case shares, made once and then read from the export cache:
the model in the case's form, the PyTorch fp32 train-time output on the case's inputs, the
model's counts and its weights hash.

Building a model, running the reference, fusing and counting cost a restart more than the
runtime session does (M5 at 224 px: about 1.4 s of 2.5 s). The first lifetime of a case (or the
first run of it on this machine) makes them and keeps them in the cache, keyed by everything
they depend on: variant, form, batch, resolution, seed, the random BatchNorm statistics, the
checkpoint (a hash of its contents), torch and this program's version, and a hash of the code
the state comes from (the models package, lifecycle.py and this module). A state that cannot
be read back (a torch upgrade, a damaged file) or whose weights no longer hash to what it says
is made again. A later
lifetime loads the saved model and reads the rest. The model is saved whole with
``torch.save`` and read back with ``weights_only=True``, allowing only the RepNeXt layer
classes and the torch modules they are made of: a file in the cache cannot run code.
"""
from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .. import __version__

MODEL_FILE, EXPECTED_FILE = "model.pt", "expected.npy"


@dataclass
class CaseState:
    model: object  # the RepNeXt in the case's form
    images: np.ndarray
    expected: np.ndarray  # the train-time fp32 model's output on ``images``
    counts: object  # models.counting.Counts
    weights: str  # the sha256 of the model's weights (export cache keys)
    reused: bool  # read from the cache, not made here


def checkpoint_identity(path: str | None) -> dict | None:
    """A checkpoint as a key sees it: the SHA-256 of its contents (another file of the same
    size and modification time is another checkpoint)."""
    if not path:
        return None
    digest = hashlib.sha256()
    with open(Path(path).expanduser(), "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return {"sha256": digest.hexdigest()}


@lru_cache(maxsize=1)
def code_digest() -> str:
    """A hash of the code a state comes from (the models, how a case builds them, this module):
    a change to the fusion or the layers is another state, whatever the version says."""
    from .. import models

    digest = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for path in sorted([*Path(models.__file__).resolve().parent.glob("*.py"), here / "lifecycle.py",
                        Path(__file__).resolve()]):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def state_key(case, settings) -> dict:
    import torch

    return {"variant": case.variant.upper(), "form": case.form, "batch": case.batch, "resolution": case.resolution,
            "seed": settings.seed, "randomize": settings.randomize,
            "checkpoint": checkpoint_identity(settings.checkpoint), "torch": torch.__version__,
            "repnext_bench": __version__, "code": code_digest()}


def case_images(case, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((case.batch, 3, case.resolution, case.resolution),
                                                       dtype=np.float32)


def _allowed_classes() -> list[type]:
    """The classes a saved RepNeXt is made of: its own layers and the torch modules inside them."""
    from torch import nn

    from ..models import layers, network, registry

    ours = [value for module in (layers, network) for value in vars(module).values()
            if isinstance(value, type) and issubclass(value, nn.Module) and value.__module__ == module.__name__]
    return [*ours, registry.Variant, registry.PaperFigures, nn.Sequential, nn.Conv2d, nn.Linear, nn.BatchNorm1d,
            nn.BatchNorm2d, nn.GELU, nn.Identity, nn.Dropout]


def load_model(path: Path):
    import torch

    with torch.serialization.safe_globals(_allowed_classes()):
        return torch.load(path, weights_only=True).eval()


def case_state(case, settings, cache, make) -> CaseState:
    """The case's state from ``cache`` (an export.ExportCache), or made by ``make()`` (which
    returns model, expected, counts) and kept there."""
    import torch

    from ..export import weights_hash
    from ..models.counting import Counts

    made = {}

    def create(path: Path) -> dict:
        model, expected, counts = make()
        made.update(model=model, expected=expected, counts=counts)
        torch.save(model, path)
        np.save(path.parent / EXPECTED_FILE, expected)
        made["weights"] = weights_hash(model)
        return {"weights_sha256": made["weights"], "params": counts.params, "macs": counts.macs,
                "per_module_macs": counts.per_module_macs}

    key = state_key(case, settings)
    artifact = cache.get_or_create("case", key, MODEL_FILE, create)
    images = case_images(case, settings.seed)
    if not made:
        info = artifact.info
        try:
            model = load_model(artifact.path)
            expected = np.load(artifact.path.parent / EXPECTED_FILE)
            intact = weights_hash(model) == info["weights_sha256"]
        except Exception:  # noqa: BLE001 - refused, damaged or from another torch: made again below
            intact = False
        if intact:
            counts = Counts(info["params"], info["macs"], info.get("per_module_macs", {}))
            return CaseState(model, images, expected, counts, info["weights_sha256"], True)
        shutil.rmtree(artifact.path.parent, ignore_errors=True)
        cache.get_or_create("case", key, MODEL_FILE, create)
    return CaseState(made["model"], images, made["expected"], made["counts"], made["weights"], False)


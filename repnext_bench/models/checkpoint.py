"""Loading the official RepNeXt checkpoints safely.

Formats: the train-time ``.pth`` (``{"model": state_dict, "args": Namespace, ...}``), the
StarNet-recipe ``.pth.tar`` (``{"state_dict": ...}``), a bare state_dict, and the fused
TorchScript ``.pt`` (the official fused form). Pickles are read with
``torch.load(weights_only=True)``; the only class allowed beyond tensors and plain
containers is ``argparse.Namespace``, which the official files hold.
"""
from __future__ import annotations

import argparse
import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from .network import FORMS, RepNeXt, convert, create_model

SAFE_GLOBALS = [argparse.Namespace]
_SHOWN = 5


class CheckpointError(ValueError):
    """A checkpoint could not be read, was refused, or does not fit the model."""


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") or "/code/" in name for name in archive.namelist())


def _read_pickle(path: Path) -> object:
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        unsafe = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if unsafe is None:
            first_line = str(exc).strip().splitlines()[0]
            raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({first_line})") from exc
        raise CheckpointError(
            f"refused to load {path}: unpickling it would call {unsafe.group(1)}, which could run any code; "
            "only tensors, plain containers and argparse.Namespace are allowed"
        ) from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({exc})") from exc


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The state_dict held by a checkpoint file in any of the official formats."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    if _is_torchscript(path):
        try:
            with warnings.catch_warnings():  # TorchScript is deprecated, but it is the official fused format
                warnings.simplefilter("ignore", DeprecationWarning)
                return dict(torch.jit.load(str(path), map_location="cpu").state_dict())
        except RuntimeError as exc:
            raise CheckpointError(f"{path} is not a loadable TorchScript archive ({exc})") from exc
    content = _read_pickle(path)
    if isinstance(content, Mapping):
        for key in ("model", "state_dict"):
            if isinstance(content.get(key), Mapping):
                content = content[key]
                break
    if not isinstance(content, Mapping) or not content or not all(isinstance(v, Tensor) for v in content.values()):
        keys = ", ".join(map(str, list(content)[:8])) if isinstance(content, Mapping) else type(content).__name__
        raise CheckpointError(
            f"{path} holds no state_dict: expected a 'model' or 'state_dict' entry or a bare state_dict, found {keys}"
        )
    state = {str(k): v for k, v in content.items()}
    if all(k.startswith("module.") for k in state):  # saved from DistributedDataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def checkpoint_form(state: Mapping[str, Tensor]) -> str | None:
    """Which of ``FORMS`` a RepNeXt state_dict was saved from; None when it is not recognised."""
    if "stem.stem.0.conv.weight" in state:
        return "train"
    if "stem.stem.0.weight" not in state:
        return None
    if any(k.startswith("stages.") and k.endswith(".norm.running_var") for k in state):
        return "official"
    return "fused"


def _list(names: list[str]) -> str:
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


def mismatches(model: torch.nn.Module, state: Mapping[str, Tensor]) -> str:
    """What keeps ``state`` from loading strictly into ``model``, readably; empty when it fits."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} (checkpoint {tuple(state[k].shape)}, model {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    parts = [f"{len(items)} {label}: {_list(items)}" for label, items in
             (("missing", missing), ("unexpected", unexpected), ("with the wrong shape", wrong)) if items]
    return "; ".join(parts)


def load_checkpoint(model: RepNeXt, path: str | Path) -> RepNeXt:
    """Load an official checkpoint into ``model`` in place and return it.

    A checkpoint of an earlier form than the model (train-time weights into a fused model)
    is loaded into that form first and then converted; a later one (fused weights into a
    train-time model) is refused, since fusion cannot be undone.
    """
    state = read_state_dict(path)
    source_form = checkpoint_form(state) or model.form
    if FORMS.index(source_form) > FORMS.index(model.form):
        raise CheckpointError(
            f"{path} holds the {source_form} form, which cannot be loaded into a {model.form} model "
            f"(fusion cannot be undone): create the model with form={source_form!r}"
        )
    source = model if source_form == model.form else create_model(model.variant, source_form, model.num_classes)
    problems = mismatches(source, state)
    if problems:
        raise CheckpointError(
            f"{path} does not fit RepNeXt-{model.variant.name} ({source_form} form, "
            f"{model.num_classes} classes): {problems}"
        )
    source.load_state_dict(state)
    if source is not model:
        model.load_state_dict(convert(source, model.form).state_dict())
    return model

"""The JSON report: its layout (``SCHEMA_VERSION``), atomic writing and checked reading.

Tools outside the project read these files, so the names are stable. The contract is published
as a JSON Schema, :data:`SCHEMA_PATH` (``report.schema.json`` beside this module): top level
``schema_version``, ``tool``, ``created``, ``environment``, ``config``, ``results``; each run
result is a :class:`repnext_bench.core.records.Result`.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from .. import __version__
from ..core.records import RecordError, read_results

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("report.schema.json")
KINDS = ("run", "profile", "gate")
TOP_LEVEL = ("schema_version", "tool", "created", "environment", "config", "results")


class ReportError(ValueError):
    """A file is not a report this version can read."""


def new_report(environment: dict, config: dict) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "repnext-bench", "version": __version__},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": environment,
        "config": config,
        "results": [],
    }


def write_report(report: dict, path: Path) -> None:
    """Write atomically: a temporary file in the same folder, then a rename over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(to_json(report) + "\n")
        os.chmod(temporary, 0o644)  # mkstemp makes it private; a report is for others to read
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def to_json(report: dict, indent: int = 1) -> str:
    """A report as standard JSON: what the files hold and what ``--json`` prints."""
    return json.dumps(_finite(report), indent=indent, allow_nan=False)


def _finite(value):
    """``value`` with every infinite or NaN number as None: standard JSON has no such numbers,
    and the readers of a report (jq, browsers, other languages) reject Python's ``Infinity``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def read_report(path: Path) -> dict:
    """A report from disk, checked enough that later code can rely on its layout: the top level,
    the version, and every field of every run result (:func:`repnext_bench.core.records.read_results`)."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise ReportError(f"{path}: no such file") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: not a JSON report ({exc})") from exc
    if not isinstance(data, dict) or any(key not in data for key in TOP_LEVEL):
        raise ReportError(f"{path}: not a repnext-bench report (needs {', '.join(TOP_LEVEL)})")
    if data["schema_version"] != SCHEMA_VERSION:
        raise ReportError(f"{path}: schema version {data['schema_version']!r}; this version reads {SCHEMA_VERSION}")
    kind = data.get("kind", "run")
    if kind not in KINDS:
        raise ReportError(f"{path}: kind {kind!r} is not one of {', '.join(KINDS)}")
    if kind == "run":
        try:
            read_results(data["results"])
        except RecordError as exc:
            raise ReportError(f"{path}: {exc}") from None
    return data

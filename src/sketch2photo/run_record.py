"""What a run leaves behind in metrics.json: status, final metrics, per-epoch history, timing.

Written by s2p-train (also when a run fails) and s2p-eval, read by s2p-compare and the benchmarks.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

RECORD_NAME = "metrics.json"


def _jsonable(value: Any) -> Any:
    """JSON has no NaN or inf: write them as strings ("nan", "inf")."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return value


def write_record(run_dir: str | Path, record: dict[str, Any]) -> Path:
    """Atomically write <run_dir>/metrics.json."""
    path = Path(run_dir) / RECORD_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(_jsonable(record), indent=2, default=str, allow_nan=False) + "\n")
    os.replace(partial, path)
    return path


def read_record(run_dir: str | Path) -> dict[str, Any] | None:
    path = Path(run_dir) / RECORD_NAME
    if not path.is_file():
        return None
    return json.loads(path.read_text())

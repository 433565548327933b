"""Strict JSON from results that hold NumPy scalars and NaN/inf."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def json_safe(obj: object) -> object:
    """NaN/inf -> None and numpy scalars -> Python numbers, recursively (dict keys as str)."""
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj

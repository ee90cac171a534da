"""Config validation helpers: every rejection is one line that names the field.

    check(lr > 0, "maml.inner_lr", "must be > 0", lr)   # ConfigError("maml.inner_lr: must be > 0, got -1.0")
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from jmeta.errors import ConfigError


def check(cond: bool, field: str, message: str, value: Any) -> None:
    """Raises ``ConfigError("{field}: {message}, got {value!r}")`` unless ``cond``."""
    if not cond:
        raise ConfigError(f"{field}: {message}, got {value!r}")


def _floats(value: Any) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, float):
        return [value]
    if isinstance(value, tuple | list):
        return [v for item in value for v in _floats(item)]
    return []


INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def _ints(value: Any) -> list[int]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, tuple | list):
        return [v for item in value for v in _ints(item)]
    return []


def check_finite_fields(config: Any, prefix: str = "") -> None:
    """Rejects inf/NaN in any float field (or tuple of floats) of a dataclass config, and integers
    outside the int32 range (counters and sizes become int32 arrays under JAX's default x32)."""
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        name = f"{prefix}.{field.name}" if prefix else field.name
        check(all(math.isfinite(v) for v in _floats(value)), name, "must be finite", value)
        check(all(INT32_MIN <= v <= INT32_MAX for v in _ints(value)), name,
              f"must be an integer in [{INT32_MIN}, {INT32_MAX}]", value)

"""Environment registry: ``make(name, variant=..., **overrides) -> (env, task_distribution)``.

Each env module registers its own families when it is imported (``register(name, EnvEntry(...))``
at module level); importing :mod:`jmeta.envs` imports the family subpackages (``toy``, ``mujoco``,
``pixel``), so every built-in env is registered once ``jmeta`` is imported.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from typing import Any

import jax

from jmeta.envs.base import MetaEnv
from jmeta.envs.wrappers import ValidatedEnv
from jmeta.errors import ConfigError, unknown_name
from jmeta.tasks import TaskDistribution


@dataclasses.dataclass(frozen=True)
class EnvEntry:
    """How to build one environment family.

    variants: variant name -> frozen params dataclass (the published definitions).
    build: (params, variant) -> (env, task_distribution).
    description: one line for tables and ``--help``.
    """

    variants: dict[str, Any]
    build: Callable[[Any, str], tuple[MetaEnv, TaskDistribution]]
    description: str


_REGISTRY: dict[str, EnvEntry] = {}


def register(name: str, entry: EnvEntry) -> None:
    if name in _REGISTRY:
        raise ValueError(f"environment {name!r} is already registered")
    if "default" not in entry.variants:
        raise ValueError(f"environment {name!r} must define a 'default' variant")
    _REGISTRY[name] = entry


def list_envs() -> list[str]:
    """Names of all registered environments, sorted."""
    return sorted(_REGISTRY)


def list_variants(name: str) -> list[str]:
    """Variant names of environment ``name``."""
    return sorted(_entry(name).variants)


def variant_params(name: str, variant: str = "default") -> Any:
    """The frozen params dataclass of ``name``'s ``variant`` (its fields are the valid overrides)."""
    entry = _entry(name)
    if variant not in entry.variants:
        raise unknown_name(f"{name} variant", variant, list(entry.variants))
    return entry.variants[variant]


def describe(name: str) -> str:
    return _entry(name).description


def _entry(name: str) -> EnvEntry:
    if name not in _REGISTRY:
        raise unknown_name("environment", name, list_envs())
    return _REGISTRY[name]


def make(name: str, variant: str = "default", **overrides: Any) -> tuple[MetaEnv, TaskDistribution]:
    """Builds environment ``name`` in ``variant`` with optional static overrides.

    ``overrides`` replace fields of the variant's params dataclass (e.g. ``horizon=50``); unknown
    fields raise an error listing the valid ones. Returns ``(env, task_distribution)``.
    """
    entry = _entry(name)
    if variant not in entry.variants:
        raise unknown_name(f"{name} variant", variant, list(entry.variants))
    params = entry.variants[variant]
    fields = {f.name for f in dataclasses.fields(params)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for environment {name!r}; valid options are: "
            + ", ".join(sorted(fields))
        )
    hints = typing.get_type_hints(type(params))
    for field, value in overrides.items():
        _check_override(name, field, value, hints.get(field))
    params = dataclasses.replace(params, **overrides)
    for field in ("horizon", "episodes_per_trial"):
        value = getattr(params, field, 1)
        if value < 1:
            raise ConfigError(f"{name}.{field} must be >= 1, got {value}")
    env, dist = entry.build(params, variant)
    template = jax.eval_shape(dist.sample, jax.random.key(0))
    return ValidatedEnv(env, template), dist


def parse_overrides(name: str, variant: str, items: typing.Sequence[str], source: str = "env_set") -> dict[str, Any]:
    """``FIELD=VALUE`` strings (the command line's ``--env-set``) as typed overrides for :func:`make`.

    Each value is parsed by its params field's annotation: bool (``true``/``false``), int, float,
    str, a ``Literal`` of those, or an optional one (``none``). A malformed item, an unknown field
    (the error lists the valid ones) or a value of the wrong type raises a one-line
    :class:`ConfigError` that starts with ``source``.
    """
    params = variant_params(name, variant)
    hints = typing.get_type_hints(type(params))
    fields = sorted(f.name for f in dataclasses.fields(params))
    out: dict[str, Any] = {}
    for item in items:
        field, sep, text = item.partition("=")
        field, text = field.strip(), text.strip()
        if not sep or not field:
            raise ConfigError(f"{source}: {item!r} must look like FIELD=VALUE")
        if field not in hints:
            raise ConfigError(f"{source}: unknown option {field!r} for environment {name!r}; valid options are: "
                              + ", ".join(fields))
        value = _parse_value(text, hints[field])
        if value is _UNPARSED:
            kind = getattr(hints[field], "__name__", None) or str(hints[field]).replace("typing.", "")
            raise ConfigError(f"{source}: {name}.{field} cannot be set from {text!r} (type {kind})")
        out[field] = value
    return out


_UNPARSED = object()


def _parse_value(text: str, annotation: Any) -> Any:
    """``text`` converted to fit ``annotation``, or :data:`_UNPARSED`."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None):
        return None if text.lower() == "none" else _UNPARSED
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            value = _parse_value(text, arg)
            if value is not _UNPARSED:
                return value
        return _UNPARSED
    if origin is typing.Literal:
        for arg in args:
            value = _parse_value(text, type(arg))
            if value is not _UNPARSED and value == arg:
                return arg
        return _UNPARSED
    if annotation is bool:
        return {"true": True, "false": False}.get(text.lower(), _UNPARSED)
    for kind in (int, float):
        if annotation is kind:
            try:
                value = kind(text)
            except ValueError:
                return _UNPARSED
            return value if kind is int or math.isfinite(value) else _UNPARSED
    if annotation is str:
        return text
    return _UNPARSED


def _conforms(value: Any, annotation: Any) -> bool:
    """Whether ``value`` fits a params field annotation (bool, int, float, str, Literal, unions, tuples)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is None or annotation is type(None):
        return value is None
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, a) for a in args)
    if origin is tuple or annotation is tuple:
        return isinstance(value, tuple | list)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if annotation is str:
        return isinstance(value, str)
    return True  # other annotations are checked by the env itself


def _check_override(env: str, field: str, value: Any, annotation: Any) -> None:
    if annotation is not None and not _conforms(value, annotation):
        expected = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
        if annotation is float:
            expected = "a finite float"
        raise ConfigError(f"{env}.{field} must be {expected}, got {value!r}")

"""Meta-learning algorithms and their lazy registry.

Each algorithm is one module (``jmeta.algos.<name>``) defining a :class:`~jmeta.algos.base.MetaLearner`
subclass; the registry below maps names to ``"module:Class"`` and imports a module only when it is
asked for. Adding an algorithm: one module, its docs page and tests, and one line here.
"""

from __future__ import annotations

import importlib

from jmeta.algos.base import AXIS_LABELS, EvalOut, MetaLearner, Preset
from jmeta.errors import unknown_name

_REGISTRY: dict[str, str] = {
    "cavia": "jmeta.algos.cavia:CAVIA",
    "dream": "jmeta.algos.dream:DREAM",
    "emaml": "jmeta.algos.emaml:EMAML",
    "erl2": "jmeta.algos.rl2:ERL2",
    "maesn": "jmeta.algos.maesn:MAESN",
    "fomaml": "jmeta.algos.fomaml:FOMAML",
    "maml": "jmeta.algos.maml:MAML",
    "metasgd": "jmeta.algos.metasgd:MetaSGD",
    "pearl": "jmeta.algos.pearl:PEARL",
    "promp": "jmeta.algos.promp:ProMP",
    "reptile": "jmeta.algos.reptile:Reptile",
    "rl2": "jmeta.algos.rl2:RL2",
    "task_inference": "jmeta.algos.task_inference:TaskInference",
    "varibad": "jmeta.algos.varibad:VariBAD",
}


def list_algorithms() -> list[str]:
    """Registered algorithm names, sorted."""
    return sorted(_REGISTRY)


def algorithm_class(name: str) -> type[MetaLearner]:
    """The MetaLearner subclass registered as ``name`` (imports its module)."""
    if name not in _REGISTRY:
        raise unknown_name("algorithm", name, list_algorithms())
    module, cls = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_algorithm(name: str, env, task_dist, config, meta_batch_size: int, **kwargs) -> MetaLearner:
    """Builds algorithm ``name`` (its config is validated on construction)."""
    return algorithm_class(name)(env=env, task_dist=task_dist, config=config, meta_batch_size=meta_batch_size, **kwargs)


__all__ = ["AXIS_LABELS", "EvalOut", "MetaLearner", "Preset", "algorithm_class", "list_algorithms", "make_algorithm"]

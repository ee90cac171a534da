"""Meta-learning algorithms and their registry."""

from __future__ import annotations

from typing import Any

from jmeta.algos.base import Algorithm
from jmeta.errors import unknown_name

_ALGORITHMS = ("maml", "rl2")


def list_algorithms() -> list[str]:
    return list(_ALGORITHMS)


def make_algorithm(name: str, env: Any, task_dist: Any, config: Any, meta_batch_size: int) -> Algorithm:
    """Builds algorithm ``name`` (its config dataclass must already be validated)."""
    if name == "maml":
        from jmeta.algos.maml import MAML

        return MAML(env=env, task_dist=task_dist, config=config, meta_batch_size=meta_batch_size)
    if name == "rl2":
        from jmeta.algos.rl2 import RL2

        return RL2(env=env, task_dist=task_dist, config=config, meta_batch_size=meta_batch_size)
    raise unknown_name("algorithm", name, list_algorithms())


__all__ = ["Algorithm", "list_algorithms", "make_algorithm"]

"""Environment registry: ``make(name, variant=..., **overrides) -> (env, task_distribution)``."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

from jmeta.envs.base import MetaEnv
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
    params = dataclasses.replace(params, **overrides)
    horizon = getattr(params, "horizon", 1)
    if horizon < 1:
        raise ConfigError(f"{name}.horizon must be >= 1, got {horizon}")
    return entry.build(params, variant)


def _register_builtin() -> None:
    from jmeta.envs.toy import point_nav

    register(
        "point_nav",
        EnvEntry(
            variants=point_nav.VARIANTS,
            build=lambda p, v: (point_nav.PointNav(p, v), point_nav.PointNavTaskDistribution(p)),
            description="2D point robot, unobserved goal (MAML); 'sparse': VariBAD semicircle goals",
        ),
    )
    from jmeta.envs.toy import bandit, grid_nav, tabular_mdp

    register(
        "grid_nav",
        EnvEntry(
            variants=grid_nav.VARIANTS,
            build=lambda p, v: (grid_nav.GridNav(p, v), grid_nav.GridNavTaskDistribution(p)),
            description="VariBAD GridNavi: 5x5 grid, unobserved goal cell, 4 episodes of 15 steps",
        ),
    )
    register(
        "bandit",
        EnvEntry(
            variants=bandit.VARIANTS,
            build=lambda p, v: (bandit.Bandit(p, v), bandit.BanditTaskDistribution(p)),
            description="RL² Bernoulli k-armed bandit, p ~ U[0,1]^k, one pull per episode, n pulls",
        ),
    )
    register(
        "tabular_mdp",
        EnvEntry(
            variants=tabular_mdp.VARIANTS,
            build=lambda p, v: (tabular_mdp.TabularMDP(p, v), tabular_mdp.TabularMDPTaskDistribution(p)),
            description="RL² random tabular MDP: 10 states, 5 actions, N(1,1) means, Dirichlet(1) rows",
        ),
    )
    from jmeta.envs.mujoco import locomotion

    for family, variants in locomotion.VARIANTS.items():
        register(
            family,
            EnvEntry(
                variants=variants,
                build=functools.partial(locomotion.build, family),
                description=locomotion.DESCRIPTIONS[family],
            ),
        )
    from jmeta.envs.mujoco import maesn

    for family, variants in maesn.VARIANTS.items():
        register(
            family,
            EnvEntry(
                variants=variants,
                build=functools.partial(maesn.build, family),
                description=maesn.DESCRIPTIONS[family],
            ),
        )
    from jmeta.envs.pixel import maze

    register(
        "maze2d",
        EnvEntry(
            variants=maze.VARIANTS_2D,
            build=lambda p, v: (maze.Maze2D(p, v), maze.MazeTaskDistribution(p)),
            description="IMPORT Maze2D: a grey box reveals which of a blue/red box is the goal (+1/-1); symbolic obs",
        ),
    )
    register(
        "maze3d",
        EnvEntry(
            variants=maze.VARIANTS_3D,
            build=lambda p, v: (maze.Maze3D(p, v), maze.MazeTaskDistribution(p)),
            description="IMPORT Maze3D: the same maze seen egocentrically, 64x48 RGB rendered in JAX",
        ),
    )
    from jmeta.envs.pixel import visual_nav

    register(
        "visual_nav",
        EnvEntry(
            variants=visual_nav.VARIANTS,
            build=lambda p, v: (visual_nav.VisualNav(p, v), visual_nav.VisualNavTaskDistribution(p)),
            description="DREAM sign env: 3 rooms, a sign names the goal colour; go to the box/key; 80x60 RGB",
        ),
    )


_register_builtin()

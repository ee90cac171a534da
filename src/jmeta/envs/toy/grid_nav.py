"""Grid navigation to an unobserved goal cell (VariBAD's GridNavi, Zintgraf et al. 2020).

Source: lmzintgraf/varibad ``environments/navigation/gridworld.py`` (``GridNavi``, registered as
``GridNavi-v0`` with ``num_cells=5, num_steps=15`` in ``environments/__init__.py``; 4 episodes per
task in ``config/gridworld/args_grid_varibad.py``, ``max_rollouts_per_task``):

  5 x 5 grid of cells ``(x, y)``, ``x, y in {0, ..., 4}``; every episode starts at ``(0, 0)``;
  the goal is uniform over the 21 cells other than ``(0, 0), (0, 1), (1, 0), (1, 1)``;
  5 actions: 0 noop, 1 up (y + 1), 2 right (x + 1), 3 down (y - 1), 4 left (x - 1); a move that
  would leave the grid leaves that coordinate unchanged;
  r = +1 if the position after the move is the goal, else -0.1; never terminates; H = 15;
  observation: the position after the move as floats ``(x, y)``; the goal is never observed.

A trial is ``episodes_per_trial`` episodes of one goal: the position is reset to the start at every
episode and the goal is kept (VariBAD's ``VariBadWrapper``). VariBAD's wrapper also appends an
"episode done" flag to the observation when there are several episodes per task; jmeta's recurrent
rollout passes that flag separately (``RecurrentInput.prev_done``), so the observation is 2-d.
"""

from __future__ import annotations

import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jmeta.envs.base import EnvSpec, StepOut
from jmeta.envs.registry import EnvEntry, register
from jmeta.errors import ConfigError
from jmeta.spaces import Box, Discrete
from jmeta.tasks import TaskDistributionBase

#: Cells never used as goals: the start and its three neighbours in the corner.
EXCLUDED_GOALS = ((0, 0), (0, 1), (1, 0), (1, 1))

#: Action index -> (dx, dy), in VariBAD's order: noop, up, right, down, left.
ACTION_DELTAS = np.array([[0, 0], [0, 1], [1, 0], [0, -1], [-1, 0]], np.int32)
ACTION_NAMES = ("noop", "up", "right", "down", "left")
NUM_ACTIONS = 5


def candidate_goals(num_cells: int = 5) -> np.ndarray:
    """The possible goal cells, int32[N, 2] as ``(x, y)``, in VariBAD's order (x-major).

    With ``num_cells = 5`` this is the 21 cells of the grid minus :data:`EXCLUDED_GOALS`.
    """
    cells = [c for c in itertools.product(range(num_cells), repeat=2) if c not in EXCLUDED_GOALS]
    return np.asarray(cells, np.int32).reshape(-1, 2)


def move(position: jax.Array, action: jax.Array, num_cells: int = 5) -> jax.Array:
    """The cell after taking ``action`` from ``position`` (int32[2]); moves off the grid stay put.

    Actions outside ``{0, ..., 4}`` are clipped into that range.
    """
    delta = jnp.asarray(ACTION_DELTAS)[jnp.clip(jnp.asarray(action, jnp.int32), 0, NUM_ACTIONS - 1)]
    return jnp.clip(jnp.asarray(position, jnp.int32) + delta, 0, num_cells - 1)


def manhattan(a: jax.Array, b: jax.Array) -> jax.Array:
    """Manhattan distance between cells (int32[..., 2] -> int32[...])."""
    return jnp.abs(jnp.asarray(a, jnp.int32) - jnp.asarray(b, jnp.int32)).sum(axis=-1)


@struct.dataclass
class GridNavTask:
    """goal: int32[2], the goal cell ``(x, y)``."""

    goal: jax.Array


@struct.dataclass
class GridNavState:
    """position: int32[2] cell ``(x, y)``; time: int32 step counter within the episode."""

    position: jax.Array
    time: jax.Array


@dataclasses.dataclass(frozen=True)
class GridNavParams:
    """Static definition of one grid_nav variant (overridable through ``jmeta.make``)."""

    horizon: int = 15
    episodes_per_trial: int = 4
    num_cells: int = 5
    goal_reward: float = 1.0
    step_reward: float = -0.1


VARIANTS: dict[str, GridNavParams] = {"default": GridNavParams()}

SOURCES = {"default": "lmzintgraf/varibad environments/navigation/gridworld.py (GridNavi-v0)"}


def _check(params: GridNavParams) -> None:
    if params.num_cells < 3:
        raise ConfigError(f"grid_nav.num_cells must be >= 3 (goals exclude a 2x2 corner), got {params.num_cells}")
    if params.episodes_per_trial < 1:
        raise ConfigError(f"grid_nav.episodes_per_trial must be >= 1, got {params.episodes_per_trial}")


@dataclasses.dataclass(frozen=True)
class GridNavTaskDistribution(TaskDistributionBase):
    """Goal uniform over :func:`candidate_goals` (VariBAD: ``random.choice(possible_goals)``)."""

    params: GridNavParams

    def sample(self, key: jax.Array) -> GridNavTask:
        goals = jnp.asarray(candidate_goals(self.params.num_cells))
        index = jax.random.randint(key, (), 0, goals.shape[0])
        return GridNavTask(goal=goals[index])


class GridNav:
    """VariBAD's GridNavi. See the module docstring for the definition."""

    VERSION = "1"

    def __init__(self, params: GridNavParams, variant: str = "default"):
        _check(params)
        self.params = params
        self.spec = EnvSpec.from_params(
            "grid_nav", variant, params,
            observation_space=Box(0.0, float(params.num_cells - 1), (2,)),
            action_space=Discrete(NUM_ACTIONS),
            version=self.VERSION,
            source=SOURCES,
        )

    @property
    def num_states(self) -> int:
        """Number of cells (the discrete states a multi-head reward decoder predicts over)."""
        return self.params.num_cells**2

    def state_index(self, obs: jax.Array) -> jax.Array:
        """Cell index ``x * num_cells + y`` of observations ``[..., 2]`` -> int32[...] (VariBAD's
        ``task_to_id`` order)."""
        cell = jnp.round(obs).astype(jnp.int32)
        return cell[..., 0] * self.params.num_cells + cell[..., 1]

    def reset(self, key: jax.Array, task: GridNavTask) -> tuple[jax.Array, GridNavState]:
        del key, task  # deterministic start at (0, 0)
        state = GridNavState(position=jnp.zeros(2, jnp.int32), time=jnp.zeros((), jnp.int32))
        return state.position.astype(jnp.float32), state

    def step(
        self, key: jax.Array, state: GridNavState, action: jax.Array, task: GridNavTask
    ) -> StepOut:
        del key  # deterministic dynamics
        p = self.params
        position = move(state.position, action, p.num_cells)
        on_goal = jnp.all(position == task.goal)
        reward = jnp.where(on_goal, p.goal_reward, p.step_reward).astype(jnp.float32)
        new_state = GridNavState(position=position, time=state.time + 1)
        return StepOut(
            obs=position.astype(jnp.float32),
            state=new_state,
            reward=reward,
            terminated=jnp.zeros((), bool),
            truncated=new_state.time >= p.horizon,
            info={
                "on_goal": on_goal.astype(jnp.float32),
                "distance": manhattan(position, task.goal).astype(jnp.float32),
            },
        )


register(
    "grid_nav",
    EnvEntry(
        variants=VARIANTS,
        build=lambda p, v: (GridNav(p, v), GridNavTaskDistribution(p)),
        description="VariBAD GridNavi: 5x5 grid, unobserved goal cell, 4 episodes of 15 steps",
    ),
)

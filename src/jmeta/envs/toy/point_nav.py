"""2D point navigation (Finn et al. 2017, MAML) and its sparse-reward variant (VariBAD).

Default (``variant="default"``), source cbfinn/maml_rl ``maml_examples/point_env_randgoal.py``:
  state s in R^2 starts at (0, 0); action a in [-0.1, 0.1]^2 (clipped);
  s' = s + clip(a, -0.1, 0.1); r = -||s' - g||_2 (after the move);
  terminated when |s'_x - g_x| < 0.01 and |s'_y - g_y| < 0.01; goal g ~ U[-0.5, 0.5]^2; H = 100.
  The observation is the position s' only: the goal is never observed.

``variant="sparse"``, source lmzintgraf/varibad ``environments/navigation/point_robot.py``
(SparsePointEnv, itself from katerakelly/oyster): goal g = (cos t, sin t) with t ~ U[0, pi];
dense distance d = ||s' - g||; r = 1 - d if d <= 0.2 else 0; never terminates; H = 100;
3 episodes per trial.

``variant="semicircle"``: the sparse variant's goals with the dense reward ``-d`` and one episode
per trial: MAESN's protocol on a pure-JAX task (meta-train dense, meta-test with ``sparse=True``).
Every variant reports ``info["success"]`` (1.0 while ``d <= goal_radius``) and ``info["distance"]``.

Note: maml_rl wraps this env in rllab's ``normalize``, so its policy acts in [-1, 1]^2 and
the wrapper maps a -> clip(0.1 a). jmeta does the same with
:class:`jmeta.envs.wrappers.RescaleActions` (on by default in the trainer); the env itself
follows the definition above.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct

from jmeta.envs.base import EnvSpec, StepOut
from jmeta.envs.registry import EnvEntry, register
from jmeta.errors import ConfigError
from jmeta.spaces import Box
from jmeta.tasks import TaskDistributionBase


@struct.dataclass
class PointNavTask:
    """goal: float32[2], the target position."""

    goal: jax.Array


@struct.dataclass
class PointNavState:
    """position: float32[2]; time: int32 step counter within the episode."""

    position: jax.Array
    time: jax.Array


@dataclasses.dataclass(frozen=True)
class PointNavParams:
    """Static definition of one point_nav variant (overridable through ``jmeta.make``)."""

    horizon: int = 100
    episodes_per_trial: int = 1
    max_step: float = 0.1
    goal_low: float = -0.5
    goal_high: float = 0.5
    goal_tolerance: float = 0.01
    sparse: bool = False
    goal_radius: float = 0.2  # sparse: reward only within this distance
    goal_set: str = "box"  # "box": U[low, high]^2 ; "semicircle": unit upper semicircle


GOAL_SETS = ("box", "semicircle")


def _check(params: PointNavParams) -> None:
    if not params.max_step > 0:
        raise ConfigError(f"point_nav.max_step must be > 0, got {params.max_step}")
    if not params.goal_low < params.goal_high:
        raise ConfigError(f"point_nav.goal_low must be < goal_high, got {params.goal_low} and {params.goal_high}")
    if params.goal_set not in GOAL_SETS:
        raise ConfigError(f"point_nav.goal_set must be one of {', '.join(GOAL_SETS)}, got {params.goal_set!r}")
    if not params.goal_tolerance >= 0 or not params.goal_radius > 0:
        raise ConfigError("point_nav.goal_tolerance must be >= 0 and goal_radius > 0, got "
                          f"{params.goal_tolerance} and {params.goal_radius}")


VARIANTS: dict[str, PointNavParams] = {
    "default": PointNavParams(),
    "sparse": PointNavParams(sparse=True, goal_set="semicircle", episodes_per_trial=3),
    "semicircle": PointNavParams(goal_set="semicircle"),
}

SOURCES = {
    "default": "cbfinn/maml_rl maml_examples/point_env_randgoal.py",
    "sparse": "lmzintgraf/varibad environments/navigation/point_robot.py (SparsePointEnv)",
    "semicircle": "SparsePointEnv's semicircle goals with the dense reward (MAESN's dense meta-training "
                  "protocol, russellmendonca/maesn_suite)",
}


@dataclasses.dataclass(frozen=True)
class PointNavTaskDistribution(TaskDistributionBase):
    """Samples :class:`PointNavTask` goals as the variant defines."""

    params: PointNavParams

    def sample(self, key: jax.Array) -> PointNavTask:
        p = self.params
        if p.goal_set == "semicircle":
            angle = jax.random.uniform(key, (), jnp.float32, 0.0, jnp.pi)
            goal = jnp.stack([jnp.cos(angle), jnp.sin(angle)])
        else:
            goal = jax.random.uniform(key, (2,), jnp.float32, p.goal_low, p.goal_high)
        return PointNavTask(goal=goal)


class PointNav:
    """Point robot navigating to an unobserved goal. See the module docstring for definitions."""

    VERSION = "1"

    def __init__(self, params: PointNavParams, variant: str = "default"):
        _check(params)
        self.params = params
        self.spec = EnvSpec.from_params(
            "point_nav", variant, params,
            observation_space=Box(float("-inf"), float("inf"), (2,)),
            action_space=Box(-params.max_step, params.max_step, (2,)),
            version=self.VERSION,
            source=SOURCES,
        )

    def reset(self, key: jax.Array, task: PointNavTask) -> tuple[jax.Array, PointNavState]:
        del key, task  # deterministic start at the origin
        state = PointNavState(position=jnp.zeros(2, jnp.float32), time=jnp.zeros((), jnp.int32))
        return state.position, state

    def reward(self, position: jax.Array, task: PointNavTask) -> tuple[jax.Array, jax.Array]:
        """Reward and distance at ``position`` (after the move). Shapes: [2] -> (scalar, scalar)."""
        distance = jnp.linalg.norm(position - task.goal)
        if self.params.sparse:
            reward = jnp.where(distance <= self.params.goal_radius, 1.0 - distance, 0.0)
        else:
            reward = -distance
        return reward.astype(jnp.float32), distance

    def step(
        self, key: jax.Array, state: PointNavState, action: jax.Array, task: PointNavTask
    ) -> StepOut:
        del key  # deterministic dynamics
        p = self.params
        move = jnp.clip(action.astype(jnp.float32), -p.max_step, p.max_step)
        position = state.position + move
        reward, distance = self.reward(position, task)
        if p.sparse:
            terminated = jnp.zeros((), bool)
        else:
            terminated = jnp.all(jnp.abs(position - task.goal) < p.goal_tolerance)
        new_state = PointNavState(position=position, time=state.time + 1)
        return StepOut(
            obs=position,
            state=new_state,
            reward=reward,
            terminated=terminated,
            truncated=new_state.time >= p.horizon,
            info={"distance": distance, "success": (distance <= p.goal_radius).astype(jnp.float32)},
        )


register(
    "point_nav",
    EnvEntry(
        variants=VARIANTS,
        build=lambda p, v: (PointNav(p, v), PointNavTaskDistribution(p)),
        description="2D point robot, unobserved goal (MAML); 'sparse': VariBAD semicircle goals; "
                    "'semicircle': those goals, dense reward",
    ),
)

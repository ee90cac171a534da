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

``variant="pearl"``, source katerakelly/oyster ``rlkit/envs/point_robot.py`` (PointEnv with
``randomize_tasks=True, n_tasks=100``) + ``configs/point-robot.json``: 100 fixed goals from numpy's
legacy ``seed(1337)`` and ``uniform(-1, 1)`` drawn x, y per goal; the first 80 train, the last 20
are held out; every episode starts at ``U[-1, 1]^2``; r = -d; never terminates; H = 20; 3
episodes per trial (oyster's 60-step evaluation).

``variant="pearl_sparse"``, same file (SparsePointEnv) + ``configs/sparse-point-robot.json``: 100
fixed goals at ``linspace(0, pi, 100)`` on the unit circle, shuffled by numpy's legacy
``seed(1337); shuffle``, 80 train / 20 held out; starts at (0, 0); r = 1 - d within 0.2 else 0;
never terminates; H = 20; 20 episodes per trial (oyster's 400-step evaluation). The dense reward
``-d`` is in ``info["dense_reward"]`` (PEARL trains its critic on it, as oyster does).

Every variant reports ``info["success"]`` (1.0 while ``d <= goal_radius``), ``info["distance"]``
and ``info["dense_reward"]`` (``-d``).

Note: maml_rl wraps this env in rllab's ``normalize``, so its policy acts in [-1, 1]^2 and
the wrapper maps a -> clip(0.1 a). jmeta does the same with
:class:`jmeta.envs.wrappers.RescaleActions` (on by default in the trainer); the env itself
follows the definition above.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jmeta.envs.base import EnvSpec, StepOut
from jmeta.envs.registry import EnvEntry, register
from jmeta.errors import ConfigError
from jmeta.spaces import Box
from jmeta.tasks import SPLITS, FixedSplit, TaskBank, TaskDistributionBase


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
    goal_set: str = "box"  # "box": U[low, high]^2 ; "semicircle": unit upper semicircle; "pearl_*": oyster's lists
    start: str = "origin"  # "origin": (0, 0); "uniform": U[-start_extent, start_extent]^2 at every reset
    start_extent: float = 1.0
    fixed_tasks: int = 0  # pearl goal sets: the first fixed_tasks train, the last held_out_tasks held out
    held_out_tasks: int = 0
    split: str = "train"  # which fixed set ``sample`` draws from


GOAL_SETS = ("box", "semicircle", "pearl_square", "pearl_semicircle")
STARTS = ("origin", "uniform")


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
    if params.start not in STARTS:
        raise ConfigError(f"point_nav.start must be one of {', '.join(STARTS)}, got {params.start!r}")
    if not params.start_extent >= 0:
        raise ConfigError(f"point_nav.start_extent must be >= 0, got {params.start_extent}")
    if params.split not in SPLITS:
        raise ConfigError(f"point_nav.split must be one of {', '.join(SPLITS)}, got {params.split!r}")
    fixed = params.goal_set.startswith("pearl")
    if fixed and not (params.fixed_tasks >= 1 and params.held_out_tasks >= 0):
        raise ConfigError(f"point_nav.fixed_tasks must be >= 1 for goal_set={params.goal_set!r}, got {params.fixed_tasks}")
    if not fixed and (params.fixed_tasks or params.held_out_tasks):
        raise ConfigError("point_nav.fixed_tasks/held_out_tasks need a fixed goal set (goal_set='pearl_square' or "
                          f"'pearl_semicircle'), got goal_set={params.goal_set!r}")
    if params.split == "test" and params.held_out_tasks < 1:
        raise ConfigError("point_nav.split='test' needs held_out_tasks > 0")


#: PEARL (oyster ``point_robot.py``): the numpy seed of its goal lists.
PEARL_GOAL_SEED = 1337


def pearl_goals(goal_set: str, num: int) -> np.ndarray:
    """oyster's goal list of ``num`` goals, float32[num, 2] (numpy's legacy global RNG, reproduced
    with ``RandomState``): "pearl_square" draws ``uniform(-1, 1)`` for x then y of each goal after
    ``seed(1337)``; "pearl_semicircle" takes ``linspace(0, pi, num)`` on the unit circle and
    shuffles the rows after ``seed(1337)``."""
    rng = np.random.RandomState(PEARL_GOAL_SEED)
    if goal_set == "pearl_square":
        goals = rng.uniform(-1.0, 1.0, size=(num, 2))
    else:
        angles = np.linspace(0.0, np.pi, num=num)
        goals = np.stack([np.cos(angles), np.sin(angles)], axis=1)
        rng.shuffle(goals)
    return goals.astype(np.float32)


VARIANTS: dict[str, PointNavParams] = {
    "default": PointNavParams(),
    "sparse": PointNavParams(sparse=True, goal_set="semicircle", episodes_per_trial=3),
    "semicircle": PointNavParams(goal_set="semicircle"),
    "pearl": PointNavParams(horizon=20, episodes_per_trial=3, goal_set="pearl_square", start="uniform",
                            goal_tolerance=0.0, fixed_tasks=80, held_out_tasks=20),
    "pearl_sparse": PointNavParams(horizon=20, episodes_per_trial=20, goal_set="pearl_semicircle", sparse=True,
                                   goal_tolerance=0.0, fixed_tasks=80, held_out_tasks=20),
}

SOURCES = {
    "default": "cbfinn/maml_rl maml_examples/point_env_randgoal.py",
    "sparse": "lmzintgraf/varibad environments/navigation/point_robot.py (SparsePointEnv)",
    "semicircle": "SparsePointEnv's semicircle goals with the dense reward (MAESN's dense meta-training "
                  "protocol, russellmendonca/maesn_suite)",
    "pearl": "katerakelly/oyster rlkit/envs/point_robot.py (PointEnv) + configs/point-robot.json",
    "pearl_sparse": "katerakelly/oyster rlkit/envs/point_robot.py (SparsePointEnv) + configs/sparse-point-robot.json",
}


@dataclasses.dataclass(frozen=True)
class PointNavTaskDistribution(TaskDistributionBase):
    """Samples :class:`PointNavTask` goals as the variant defines."""

    params: PointNavParams

    @functools.cached_property
    def fixed_split(self) -> FixedSplit | None:
        """oyster's fixed goal list split into train and held-out goals (None for sampled goal sets)."""
        p = self.params
        if not p.goal_set.startswith("pearl"):
            return None
        goals = pearl_goals(p.goal_set, p.fixed_tasks + p.held_out_tasks)
        return FixedSplit.from_tasks(PointNavTask(goal=goals), p.fixed_tasks, p.held_out_tasks)

    @property
    def held_out(self) -> TaskBank | None:
        split = self.fixed_split
        return None if split is None else split.held_out

    def sample(self, key: jax.Array) -> PointNavTask:
        p = self.params
        if p.goal_set.startswith("pearl"):
            return self.fixed_split.sample(key, p.split)
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
        del task
        p = self.params
        if p.start == "uniform":
            position = jax.random.uniform(key, (2,), jnp.float32, -p.start_extent, p.start_extent)
        else:
            position = jnp.zeros(2, jnp.float32)
        state = PointNavState(position=position, time=jnp.zeros((), jnp.int32))
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
            info={"distance": distance, "success": (distance <= p.goal_radius).astype(jnp.float32),
                  "dense_reward": -distance},
        )


register(
    "point_nav",
    EnvEntry(
        variants=VARIANTS,
        build=lambda p, v: (PointNav(p, v), PointNavTaskDistribution(p)),
        description="2D point robot, unobserved goal (MAML); 'sparse': VariBAD semicircle goals; "
                    "'semicircle': those goals, dense reward; 'pearl', 'pearl_sparse': oyster's point robots",
    ),
)

"""MAESN's sparse-reward MuJoCo tasks: wheeled_nav, ant_goal_ring, block_push.

Gupta et al. 2018 (MAESN, russellmendonca/maesn_suite) meta-train on a dense reward over a fixed
set of 100 training tasks and meta-test on a sparse reward over a fixed, disjoint set of 100
validation tasks. Here both choices are fields of the params dataclass, selectable per run:
``reward="dense" | "sparse"`` and ``split="train" | "test"``. The distribution's ``sample`` draws
from the chosen split; its ``held_out`` is always the test set, so
:func:`jmeta.tasks.evaluation_bank` evaluates on held-out tasks.

The task sets are the authors' own numbers by default (``task_set="authors"``): the package data
file ``data/maesn_goals.npz`` holds, unchanged (float64), the six arrays MAESN pickled in
russellmendonca/maesn_suite at commit e9444915ef6bb8194bb3228b1c53c1f249305933,
``maesn/rllab/envs/goals/<key>.pkl`` (the file's ``provenance`` entry names each pickle's git blob):

* ``wheeled_trainSet`` / ``wheeled_valSet``: float64[100, 2] goals (x, y), read by ``WheeledEnv``
  with ``train=True`` (meta-training) / ``train=False`` (meta-test).
* ``ant_trainSet`` / ``ant_valSet``: float64[100, 2] goals, read likewise by ``AntEnvRandGoalRing``.
* ``pusher_trainSet`` / ``pusher_valSet``: float64[100, 16] rows ``[block, goal x, goal y, start
  qpos (13)]``, read likewise by ``PusherEnv``; the start qpos is the wrist (3, all 0) and each
  block's slide offsets (x, y) from its body position (``BLOCK_OFFSETS``), 20 layouts x 5 blocks.

jmeta's train set is the ``trainSet`` file, its test (held-out) set the ``valSet`` file, each in the
authors' row order (``train_tasks`` / ``test_tasks`` keep the first rows; MAESN's meta-test uses
validation tasks 0-29). ``task_set="seeded"`` instead draws fresh sets of the same distributions
from ``task_set_seed`` (:func:`semicircle_goals`, :func:`push_layout`).

* ``wheeled_nav``: a two-wheeled robot (``models/wheeled.xml``) drives to a goal on the upper
  semicircle of radius 2. Task :class:`GoalTask`.
* ``ant_goal_ring``: the low-gear ant (``models/ant_low_gear.xml``, gear 30) walks its centre of mass
  to a goal on the same semicircle. Task :class:`GoalTask`.
* ``block_push``: a planar wrist (``models/pusher.xml``) pushes the task's block (one of 5) to a goal
  in that block's lane. Task :class:`PushTask` (block index, goal, the layout of all 5 blocks).

The sparse reward keeps the dense one within ``sparse_radius`` of the goal (distance ``<=``
radius) and otherwise replaces the goal term by its value at the origin (MAESN: ``-||g||``), so it
carries no information about where to go until the goal region is reached.

Physics is pluggable as in :mod:`jmeta.envs.mujoco.locomotion` (``physics="auto" | "mjx" | "mujoco"``);
observations, rewards and termination are shared JAX code over :class:`physics.PhysicsOut`.
rllab semantics throughout: one physics step per env step (the MJCFs define no ``frame_skip``),
then ``model.forward()``, so body poses, the centre of mass and contact forces are those of the
new state (``fresh_view=True``). The env action is the motor control in the MJCF's ``ctrlrange``
(MuJoCo clamps it; control costs use the action as received). Each env card
(``docs/envs/<name>.md``) gives the definitions in full.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jmeta.envs.base import EnvSpec, StepOut
from jmeta.envs.mujoco import physics as phys
from jmeta.envs.mujoco.assets import data_path
from jmeta.envs.mujoco.common import TORSO, MujocoState, unhealthy
from jmeta.envs.registry import EnvEntry, register
from jmeta.errors import ConfigError
from jmeta.spaces import Box
from jmeta.tasks import FixedSplit, TaskBank, TaskDistributionBase

REWARDS = ("dense", "sparse")
SPLITS = ("train", "test")
TASK_SETS = ("authors", "seeded")
#: The authors' task sets (package data, see the module docstring) and their size per file.
AUTHORS_GOALS_FILE = "maesn_goals.npz"
AUTHORS_TASKS = 100
#: The key prefix of each family's arrays in :data:`AUTHORS_GOALS_FILE` (MAESN's pickle names).
AUTHORS_KEYS = {"wheeled_nav": "wheeled", "ant_goal_ring": "ant", "block_push": "pusher"}
NUM_BLOCKS = 5
BLOCK_BODIES = tuple(f"obj{k + 1}" for k in range(NUM_BLOCKS))
#: float64[5, 2], the body offsets (x, y) of obj1..obj5 in pusher.xml (MAESN's pusher_env.xml): a
#: block's world xy is its offset plus its slide qpos (MAESN stores the slide qpos in its task rows).
BLOCK_OFFSETS = np.array([[0.2, 0.0], [0.4, 0.0], [0.6, 0.0], [0.8, 0.0], [1.0, 0.0]])
#: block_push layouts (MAESN ``save_goal_samples``): lane i spans y in [-0.5 + 0.2 i, -0.3 + 0.2 i];
#: blocks start at x in [0.35, 0.65], goals lie at x in [0.75, 0.95] in their block's lane.
LANE_LOW, LANE_WIDTH = -0.5, 0.2
BLOCK_X = (0.35, 0.65)
GOAL_X = (0.75, 0.95)

__all__ = [
    "AntGoalRing",
    "AntGoalRingParams",
    "BlockPush",
    "BlockPushParams",
    "GoalTask",
    "MaesnParams",
    "MaesnState",
    "MaesnTaskDistribution",
    "PushTask",
    "WheeledNav",
    "WheeledNavParams",
    "authors_task_set",
    "push_layout",
    "semicircle_goals",
    "sparse_goal_term",
]


# --------------------------------------------------------------------------------- tasks


@struct.dataclass
class GoalTask:
    """goal: float32[2], the goal (x, y) on the upper semicircle of radius ``goal_radius``."""

    goal: jax.Array


@struct.dataclass
class PushTask:
    """One block_push task.

    block: int32[], which block (0..4, body ``obj{block + 1}``) must reach the goal.
    goal: float32[2], the goal (x, y) for that block.
    blocks: float32[5, 2], world (x, y) of every block at reset (the layout the task belongs to).
    """

    block: jax.Array
    goal: jax.Array
    blocks: jax.Array


#: The physics state after the last step and the step counter: the shared MuJoCo state pytree
#: (qpos float32[nq], qvel float32[nv], time int32, exact: the C path's float64 state bits). xpos float32[nbody, 3] / xmat float32[nbody, 9]
#: are kept only by envs that read them (the ant), else float32[0, 3] / [0, 9]; cfrc_ext
#: float32[nbody, 6] (the ant) or float32[0, 6].
MaesnState = MujocoState


# --------------------------------------------------------------------------------- params


@dataclasses.dataclass(frozen=True)
class MaesnParams:
    """Fields shared by the three MAESN tasks (every field overridable via ``jmeta.make``).

    reward: "dense" (meta-training) | "sparse" (meta-test). split: "train" | "test", the fixed
    task set ``sample`` draws from (``held_out`` is always the test set).
    sparse_radius: the sparse reward equals the dense one while the distance to the goal is
      ``<= sparse_radius``; beyond it the goal term is its value at the origin.
    task_set: "authors" (default): the train and test sets are MAESN's own ``trainSet`` /
      ``valSet`` numbers (module docstring), of which ``train_tasks`` / ``test_tasks`` keep the
      first rows (at most 100 each; ``task_set_seed`` and ``goal_radius`` are not used).
      "seeded": two disjoint fresh draws of ``train_tasks`` / ``test_tasks`` tasks from
      ``jax.random.key(task_set_seed)`` (fold_in 0 / 1).
    physics: "auto" | "mjx" | "mujoco". frame_skip: physics steps per env step (MAESN: 1).
    mjx_iterations / mjx_ls_iterations: MJX solver overrides (0 keeps the MJCF's). 4 / 8 is
      measured to match the MJCF's settings to float32 noise on all three models at about 2x the
      MJX speed (env cards, "MJX solver settings").
    qpos_noise / qvel_noise: reset noise, qpos + qpos_noise N(0, 1), qvel + qvel_noise N(0, 1).
    """

    horizon: int = 200
    episodes_per_trial: int = 1
    physics: str = "auto"
    frame_skip: int = 1
    mjx_iterations: int = 4
    mjx_ls_iterations: int = 8
    reward: str = "dense"
    split: str = "train"
    sparse_radius: float = 0.8
    task_set: str = "authors"
    train_tasks: int = 100
    test_tasks: int = 100
    task_set_seed: int = 0
    qpos_noise: float = 0.01
    qvel_noise: float = 0.1

    def validate(self, name: str) -> None:
        def bad(field: str, value, valid) -> ConfigError:
            return ConfigError(
                f"{name}.{field}={value!r} is invalid; valid values are: {', '.join(map(str, valid))}"
            )

        if self.physics not in phys.PHYSICS_PATHS:
            raise bad("physics", self.physics, phys.PHYSICS_PATHS)
        if self.reward not in REWARDS:
            raise bad("reward", self.reward, REWARDS)
        if self.split not in SPLITS:
            raise bad("split", self.split, SPLITS)
        if self.task_set not in TASK_SETS:
            raise bad("task_set", self.task_set, TASK_SETS)
        if self.frame_skip < 1 or self.episodes_per_trial < 1:
            raise ConfigError(f"{name}.frame_skip and {name}.episodes_per_trial must be >= 1")
        if self.train_tasks < 1 or self.test_tasks < 1:
            raise ConfigError(f"{name}.train_tasks and {name}.test_tasks must be >= 1")
        if self.task_set == "authors":
            if self.train_tasks > AUTHORS_TASKS or self.test_tasks > AUTHORS_TASKS:
                raise ConfigError(
                    f"{name}.train_tasks and {name}.test_tasks must be <= {AUTHORS_TASKS} with "
                    f"task_set='authors' (MAESN's files hold {AUTHORS_TASKS} tasks each); "
                    f"got {self.train_tasks} and {self.test_tasks}; use task_set='seeded' for more"
                )
            radius = getattr(self, "goal_radius", None)
            if radius is not None and radius != 2.0:
                raise ConfigError(
                    f"{name}.goal_radius={radius!r} needs task_set='seeded' (the authors' goals lie at radius 2)"
                )
        if self.sparse_radius < 0 or self.qpos_noise < 0 or self.qvel_noise < 0:
            raise ConfigError(f"{name}.sparse_radius, qpos_noise and qvel_noise must be >= 0")
        if self.mjx_iterations < 0 or self.mjx_ls_iterations < 0:
            raise ConfigError(f"{name}.mjx_iterations and mjx_ls_iterations must be >= 0 (0 keeps the MJCF's)")


@dataclasses.dataclass(frozen=True)
class WheeledNavParams(MaesnParams):
    """wheeled_nav: goal_radius (goals on the upper semicircle), ctrl_cost weight of ||a||^2."""

    goal_radius: float = 2.0
    ctrl_cost: float = 0.05
    task_set_seed: int = 20_180_201


@dataclasses.dataclass(frozen=True)
class AntGoalRingParams(MaesnParams):
    """ant_goal_ring: goal term -||com_xy - g||_1 + goal_offset; costs ctrl_cost ||a||^2 and
    contact_cost sum(clip(cfrc_ext, -1, 1)^2); bonus every step; terminates when the state is
    non-finite or torso z leaves [z_low, z_high] (when ``terminate``)."""

    goal_radius: float = 2.0
    ctrl_cost: float = 0.005
    contact_cost: float = 5e-4
    goal_offset: float = 4.0
    bonus: float = 0.05
    terminate: bool = True
    z_low: float = 0.2
    z_high: float = 1.0
    task_set_seed: int = 20_180_202


@dataclasses.dataclass(frozen=True)
class BlockPushParams(MaesnParams):
    """block_push: reward -distance_weight ||block - g||. Seeded tasks come in layouts of 5 (one
    per block), so with task_set="seeded" train_tasks and test_tasks must be multiples of 5. No
    reset noise (MAESN)."""

    horizon: int = 100
    sparse_radius: float = 0.2
    distance_weight: float = 5.0
    qpos_noise: float = 0.0
    qvel_noise: float = 0.0
    task_set_seed: int = 20_180_203

    def validate(self, name: str) -> None:
        super().validate(name)
        if self.task_set == "seeded" and (self.train_tasks % NUM_BLOCKS or self.test_tasks % NUM_BLOCKS):
            raise ConfigError(
                f"{name}.train_tasks and {name}.test_tasks must be multiples of {NUM_BLOCKS} with "
                "task_set='seeded' (one task per block of each layout)"
            )


# --------------------------------------------------------------------------------- shared terms


def sparse_goal_term(dense: jax.Array, at_origin: jax.Array, distance: jax.Array, radius: float,
                     sparse: bool) -> jax.Array:
    """MAESN's sparsification of a goal term (scalars): ``dense`` while ``distance <= radius``,
    else ``at_origin`` (the term's value at the origin); always ``dense`` when not ``sparse``."""
    if not sparse:
        return dense
    return jnp.where(distance > radius, at_origin, dense)


def _f32_info(**terms: jax.Array) -> dict[str, jax.Array]:
    return {k: jnp.asarray(v, jnp.float32) for k, v in terms.items()}


class _MaesnEnv(abc.ABC):
    """Shared shell: physics, spec, reset/step; subclasses define obs, reward and the start state."""

    VERSION = "2"  # 2: the authors' goal sets, the ant's contacts at reset
    XML = ""
    CONTACT_FORCES = False
    READS_POSES = False  # keep body poses in the state (else they are never computed under jit)

    def __init__(self, name: str, params: MaesnParams, variant: str, source: str | Mapping[str, str]):
        params.validate(name)
        self.name, self.params = name, params
        self.physics = phys.make_physics(
            params.physics,
            self.XML,
            params.frame_skip,
            self.CONTACT_FORCES,
            phys.SolverSettings(params.mjx_iterations or None, params.mjx_ls_iterations or None),
            fresh_view=True,
            body_poses=self.READS_POSES,
        )
        model = self.physics.model
        self._init_qpos = jnp.asarray(phys.initial_qpos(model), jnp.float32)
        low, high = model.actuator_ctrlrange[:, 0], model.actuator_ctrlrange[:, 1]
        if not (np.all(low == low[0]) and np.all(high == high[0])):
            raise ConfigError(f"{self.XML}: motors must share one ctrlrange")
        self.spec = EnvSpec.from_params(
            name, variant, params,
            observation_space=Box(float("-inf"), float("inf"), (self.obs_dim,)),
            action_space=Box(float(low[0]), float(high[0]), (model.nu,)),
            version=self.VERSION,
            source=source,
        )

    @property
    def sparse(self) -> bool:
        return self.params.reward == "sparse"

    # subclass hooks
    obs_dim: int = 0

    @abc.abstractmethod
    def observation(self, state: MaesnState) -> jax.Array:
        """Defined by each subclass."""

    @abc.abstractmethod
    def reward(self, state: MaesnState, action: jax.Array, task) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Defined by each subclass."""

    def terminated(self, state: MaesnState) -> jax.Array:
        del state
        return jnp.zeros((), bool)

    def start_qpos(self, task) -> jax.Array:
        """float32[nq], the reset pose before noise."""
        del task
        return self._init_qpos

    # dynamics

    def reset(self, key: jax.Array, task) -> tuple[jax.Array, MaesnState]:
        """rllab's ``reset_mujoco``: qpos + qpos_noise N(0,1), qvel = qvel_noise N(0,1), then forward.
        Returns (obs float32[obs_dim], state). With contact forces (the ant) they are those of a forward pass at
        the reset state, as MuJoCo 1.31's forward pass computed them (``Physics.reset_view``)."""
        p = self.params
        k_pos, k_vel = jax.random.split(key)
        nq, nv = self.physics.nq, self.physics.nv
        qpos = self.start_qpos(task) + p.qpos_noise * jax.random.normal(k_pos, (nq,), jnp.float32)
        qvel = p.qvel_noise * jax.random.normal(k_vel, (nv,), jnp.float32)
        view = self.physics.reset_view(qpos, qvel)
        state = self._state(view, jnp.zeros((), jnp.int32))
        return self.observation(state), state

    def _state(self, out: phys.PhysicsOut, time: jax.Array) -> MaesnState:
        if self.READS_POSES:
            xpos, xmat = out.xpos, out.xmat
        else:
            xpos, xmat = jnp.zeros((0, 3), jnp.float32), jnp.zeros((0, 9), jnp.float32)
        return MaesnState(qpos=out.qpos, qvel=out.qvel, xpos=xpos, xmat=xmat, cfrc_ext=out.cfrc_ext, time=time,
                          exact=out.exact)

    def step(self, key: jax.Array, state: MaesnState, action: jax.Array, task) -> StepOut:
        """One env step under ``action`` (float32[nu]); reward, termination and obs of the new state."""
        del key  # deterministic physics
        action = action.astype(jnp.float32)
        new_state = self._state(self.physics.step(state.qpos, state.qvel, action, state.exact), state.time + 1)
        reward, info = self.reward(new_state, action, task)
        return StepOut(
            obs=self.observation(new_state),
            state=new_state,
            reward=reward,
            terminated=self.terminated(new_state),
            truncated=new_state.time >= self.params.horizon,
            info=info,
        )


# --------------------------------------------------------------------------------- wheeled_nav


class WheeledNav(_MaesnEnv):
    """MAESN's wheeled robot: obs float32[12] = qpos (x, y, z, yaw, wheel1, wheel2), qvel (6);
    action float32[2], wheel torques in [-2, 2].

    r = -||xy - g||_2 - ctrl_cost ||a||^2; sparse: beyond ``sparse_radius`` of g, -||g||_2 - ctrl.
    """

    XML = "wheeled.xml"
    obs_dim = 12

    def observation(self, state: MaesnState) -> jax.Array:
        return jnp.concatenate([state.qpos, state.qvel]).astype(jnp.float32)

    def reward(self, state: MaesnState, action: jax.Array, task: GoalTask):
        p = self.params
        distance = jnp.linalg.norm(state.qpos[:2] - task.goal)
        term = sparse_goal_term(-distance, -jnp.linalg.norm(task.goal), distance, p.sparse_radius, self.sparse)
        ctrl = p.ctrl_cost * jnp.sum(jnp.square(action))
        info = _f32_info(task_reward=term, ctrl_cost=ctrl, goal_distance=distance,
                         success=distance <= p.sparse_radius)
        return (term - ctrl).astype(jnp.float32), info


# --------------------------------------------------------------------------------- ant_goal_ring


class AntGoalRing(_MaesnEnv):
    """MAESN's low-gear ant: obs float32[125] = qpos (15), qvel (14), clip(cfrc_ext, -1, 1) (14 x 6),
    torso rotation matrix (9), centre of mass (3); action float32[8] in [-1, 1] (gear 30).

    c = centre of mass (xy) of the whole ant; d = ||c - g||_2.
    r = -||c - g||_1 + 4 - 0.005 ||a||^2 - 5e-4 sum(clip(cfrc_ext)^2) + 0.05;
    sparse: beyond ``sparse_radius`` (d > 0.8) the goal term is -||g||_1 + 4.
    Terminates when the state is non-finite or torso z leaves [0.2, 1.0].
    """

    XML = "ant_low_gear.xml"
    CONTACT_FORCES = True
    READS_POSES = True
    obs_dim = 15 + 14 + 14 * 6 + 9 + 3

    def __init__(self, name: str, params: AntGoalRingParams, variant: str, source: str | Mapping[str, str]):
        super().__init__(name, params, variant, source)
        model = self.physics.model
        mass = np.asarray(model.body_mass[TORSO:], np.float64)  # the torso's subtree: every body but the world
        self._mass_fraction = jnp.asarray(mass / mass.sum(), jnp.float32)  # [nbody - 1]
        self._body_ipos = jnp.asarray(model.body_ipos[TORSO:], jnp.float32)  # body COM in its frame

    def center_of_mass(self, state: MaesnState) -> jax.Array:
        """float32[3], rllab's ``get_body_com("torso")``: ``subtree_com`` of the torso (= the whole ant),
        the mass-weighted mean of the bodies' centres of mass ``xpos + xmat @ ipos`` (as ``mj_comPos``)."""
        rot = state.xmat[TORSO:].reshape(-1, 3, 3)
        xipos = state.xpos[TORSO:] + jnp.einsum("bij,bj->bi", rot, self._body_ipos)
        return jnp.sum(self._mass_fraction[:, None] * xipos, axis=0)

    def observation(self, state: MaesnState) -> jax.Array:
        return jnp.concatenate([
            state.qpos,
            state.qvel,
            jnp.clip(state.cfrc_ext, -1.0, 1.0).reshape(-1),
            state.xmat[TORSO],
            self.center_of_mass(state),
        ]).astype(jnp.float32)

    def reward(self, state: MaesnState, action: jax.Array, task: GoalTask):
        p = self.params
        com = self.center_of_mass(state)[:2]
        distance = jnp.linalg.norm(com - task.goal)
        dense = -jnp.sum(jnp.abs(com - task.goal)) + p.goal_offset
        at_origin = -jnp.sum(jnp.abs(task.goal)) + p.goal_offset
        term = sparse_goal_term(dense, at_origin, distance, p.sparse_radius, self.sparse)
        ctrl = p.ctrl_cost * jnp.sum(jnp.square(action))
        contact = p.contact_cost * jnp.sum(jnp.square(jnp.clip(state.cfrc_ext, -1.0, 1.0)))
        reward = term - ctrl - contact + p.bonus
        info = _f32_info(task_reward=term, ctrl_cost=ctrl, contact_cost=contact, goal_distance=distance,
                         success=distance <= p.sparse_radius)
        return reward.astype(jnp.float32), info

    def terminated(self, state: MaesnState) -> jax.Array:
        p = self.params
        if not p.terminate:
            return jnp.zeros((), bool)
        return unhealthy(state.qpos, state.qvel, p.z_low, p.z_high)


# --------------------------------------------------------------------------------- block_push


class BlockPush(_MaesnEnv):
    """MAESN's pusher: obs float32[26] = wrist qpos (x, y, angle), the 5 blocks' world xy (10),
    qvel (13); action float32[3], wrist forces/torque in [-2, 2].

    b = world xy of the task's block after the step; d = ||g - b||_2.
    r = -5 d; sparse: beyond ``sparse_radius`` (d > 0.2), r = -5 ||g||_2. Never terminates.
    Reset: the task's layout, wrist at the origin, zero velocity (no noise).
    """

    XML = "pusher.xml"
    obs_dim = 3 + 2 * NUM_BLOCKS + 13

    def __init__(self, name: str, params: BlockPushParams, variant: str, source: str | Mapping[str, str]):
        super().__init__(name, params, variant, source)
        model = self.physics.model
        ids = [int(model.body(body).id) for body in BLOCK_BODIES]
        self._block_offsets = jnp.asarray(model.body_pos[ids, :2], jnp.float32)  # [5, 2]

    def block_positions(self, state: MaesnState) -> jax.Array:
        """float32[5, 2], world xy of the blocks (rllab: ``geom_xpos[-6:-1, :2]``). The blocks only
        slide along world x and y, so this is exactly their body offset plus their slide qpos."""
        return self._block_offsets + state.qpos[3:].reshape(NUM_BLOCKS, 2)

    def start_qpos(self, task: PushTask) -> jax.Array:
        arm = jnp.zeros((3,), jnp.float32)
        return jnp.concatenate([arm, (task.blocks - self._block_offsets).reshape(-1)]).astype(jnp.float32)

    def observation(self, state: MaesnState) -> jax.Array:
        return jnp.concatenate([
            state.qpos[:3], self.block_positions(state).reshape(-1), state.qvel,
        ]).astype(jnp.float32)

    def reward(self, state: MaesnState, action: jax.Array, task: PushTask):
        del action  # MAESN's pusher has no control cost
        p = self.params
        block = self.block_positions(state)[task.block]
        distance = jnp.linalg.norm(task.goal - block)
        w = p.distance_weight
        reward = sparse_goal_term(-w * distance, -w * jnp.linalg.norm(task.goal), distance,
                                  p.sparse_radius, self.sparse)
        info = _f32_info(task_reward=reward, goal_distance=distance, success=distance <= p.sparse_radius)
        return reward.astype(jnp.float32), info


# --------------------------------------------------------------------------------- task sets


@dataclasses.dataclass(frozen=True)
class MaesnTaskDistribution(TaskDistributionBase):
    """Draws uniformly from the fixed train or test set (``params.split``).

    ``fixed_split``: the two fixed, disjoint sets (sizes ``train_tasks`` / ``test_tasks``): the
    authors' ``trainSet`` / ``valSet`` numbers, or seeded draws (``params.task_set``);
    ``held_out`` (its test set) is what evaluation uses. ``family``: "wheeled_nav" |
    "ant_goal_ring" | "block_push" (which of the authors' files).
    """

    params: MaesnParams
    family: str

    def sample(self, key: jax.Array):
        return self.fixed_split.sample(key, self.params.split)

    @functools.cached_property
    def fixed_split(self) -> FixedSplit:
        """``task_set="authors"``: the first ``train_tasks`` rows of the authors' ``trainSet`` and
        the first ``test_tasks`` rows of their ``valSet``. ``"seeded"``: train and test sets from
        ``jax.random.key(task_set_seed)``, disjoint draws (fold_in 0 / 1). Built eagerly
        (:class:`FixedSplit`)."""
        p = self.params
        if p.task_set == "authors":
            train = authors_task_set(self.family, "train")
            test = authors_task_set(self.family, "test")
            with jax.ensure_compile_time_eval():
                return FixedSplit(
                    TaskBank(jax.tree_util.tree_map(lambda x: jnp.asarray(x[: p.train_tasks]), train)),
                    TaskBank(jax.tree_util.tree_map(lambda x: jnp.asarray(x[: p.test_tasks]), test)),
                )
        return FixedSplit.from_seed_disjoint(functools.partial(_task_set, p), p.task_set_seed, p.train_tasks, p.test_tasks)

    @property
    def held_out(self) -> TaskBank:
        return self.fixed_split.held_out


@functools.cache
def _authors_arrays() -> dict[str, np.ndarray]:
    with np.load(data_path(AUTHORS_GOALS_FILE), allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def authors_task_set(family: str, split: str) -> GoalTask | PushTask:
    """The authors' task set of ``family`` as numpy task leaves (leading axis 100, their row order):
    ``split="train"`` -> ``<key>_trainSet``, ``"test"`` -> ``<key>_valSet`` (MAESN's validation set).

    wheeled_nav / ant_goal_ring: ``GoalTask(goal=float32[100, 2])``. block_push: each row ``[block,
    goal x, goal y, qpos (13)]`` becomes ``PushTask(block=int32[100], goal=float32[100, 2],
    blocks=float32[100, 5, 2])`` with ``blocks`` the world xy ``BLOCK_OFFSETS + qpos[3:]`` (in float64,
    then rounded once to float32).
    """
    if family not in AUTHORS_KEYS:
        raise ConfigError(f"family={family!r} is invalid; valid values are: {', '.join(AUTHORS_KEYS)}")
    if split not in SPLITS:
        raise ConfigError(f"split={split!r} is invalid; valid values are: {', '.join(SPLITS)}")
    rows = _authors_arrays()[f"{AUTHORS_KEYS[family]}_{'trainSet' if split == 'train' else 'valSet'}"]
    if family != "block_push":
        return GoalTask(goal=rows.astype(np.float32))
    block = rows[:, 0].astype(np.int32)
    if not (np.array_equal(block, rows[:, 0]) and block.min() >= 0 and block.max() < NUM_BLOCKS):
        raise ConfigError(f"{AUTHORS_GOALS_FILE}: block_push rows must start with a block index 0..{NUM_BLOCKS - 1}")
    blocks = BLOCK_OFFSETS + rows[:, 6:].reshape(-1, NUM_BLOCKS, 2)
    return PushTask(block=block, goal=rows[:, 1:3].astype(np.float32), blocks=blocks.astype(np.float32))


def semicircle_goals(key: jax.Array, num: int, radius: float) -> GoalTask:
    """``num`` goals radius (cos θ, sin θ), θ ~ U[0, π) (MAESN ``generate_goals``): float32[num, 2]."""
    angle = jax.random.uniform(key, (num,), jnp.float32, 0.0, jnp.pi)
    return GoalTask(goal=radius * jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=1))


def push_layout(key: jax.Array) -> PushTask:
    """One layout and its 5 tasks (MAESN ``save_goal_samples``), leaves with leading axis 5.

    A random permutation puts block ``perm[i]`` in lane i at x ~ U[0.35, 0.65], y ~ U(lane i);
    task i asks block ``perm[i]`` to reach x ~ U[0.75, 0.95], y ~ U(lane i).
    """
    k_perm, k_bx, k_by, k_gx, k_gy = jax.random.split(key, 5)
    perm = jax.random.permutation(k_perm, NUM_BLOCKS).astype(jnp.int32)
    lanes = LANE_LOW + LANE_WIDTH * jnp.arange(NUM_BLOCKS, dtype=jnp.float32)
    block_xy = jnp.stack([
        jax.random.uniform(k_bx, (NUM_BLOCKS,), jnp.float32, *BLOCK_X),
        lanes + jax.random.uniform(k_by, (NUM_BLOCKS,), jnp.float32, 0.0, LANE_WIDTH),
    ], axis=1)
    blocks = jnp.zeros((NUM_BLOCKS, 2), jnp.float32).at[perm].set(block_xy)
    goals = jnp.stack([
        jax.random.uniform(k_gx, (NUM_BLOCKS,), jnp.float32, *GOAL_X),
        lanes + jax.random.uniform(k_gy, (NUM_BLOCKS,), jnp.float32, 0.0, LANE_WIDTH),
    ], axis=1)
    return PushTask(block=perm, goal=goals, blocks=jnp.broadcast_to(blocks, (NUM_BLOCKS, NUM_BLOCKS, 2)))


def _task_set(p: MaesnParams, key: jax.Array, num: int):
    if isinstance(p, BlockPushParams):
        k_layouts, k_shuffle = jax.random.split(key)
        layouts = jax.vmap(push_layout)(jax.random.split(k_layouts, num // NUM_BLOCKS))
        tasks = jax.tree_util.tree_map(lambda x: x.reshape(num, *x.shape[2:]), layouts)
        order = jax.random.permutation(k_shuffle, num)  # MAESN shuffles the tasks of all layouts
        return jax.tree_util.tree_map(lambda x: x[order], tasks)
    return semicircle_goals(key, num, p.goal_radius)


# --------------------------------------------------------------------------------- definitions

_WHEELED = WheeledNavParams()
_ANT = AntGoalRingParams()
_PUSH = BlockPushParams()

VARIANTS: dict[str, dict[str, MaesnParams]] = {
    "wheeled_nav": {
        "default": _WHEELED,
        "sparse": dataclasses.replace(_WHEELED, reward="sparse", split="test"),
    },
    "ant_goal_ring": {
        "default": _ANT,
        "sparse": dataclasses.replace(_ANT, reward="sparse", split="test"),
    },
    "block_push": {
        "default": _PUSH,
        "sparse": dataclasses.replace(_PUSH, reward="sparse", split="test"),
    },
}

_MAESN = "russellmendonca/maesn_suite maesn/"
SOURCES: dict[str, dict[str, str]] = {
    "wheeled_nav": {
        "default": _MAESN + "rllab/envs/mujoco/wheeled_robot.py (WheeledEnv, train) + vendor/mujoco_models/wheeled.xml"
        " + rllab/envs/goals/wheeled_trainSet.pkl",
        "sparse": _MAESN + "rllab/envs/mujoco/wheeled_robot.py (WheeledEnv, sparse, validation goals)"
        " + rllab/envs/goals/wheeled_valSet.pkl",
    },
    "ant_goal_ring": {
        "default": _MAESN + "rllab/envs/mujoco/ant_env_rand_goal_ring.py (AntEnvRandGoalRing, train) "
        "+ vendor/mujoco_models/low_gear_ratio_ant.xml + rllab/envs/goals/ant_trainSet.pkl",
        "sparse": _MAESN + "rllab/envs/mujoco/ant_env_rand_goal_ring.py (sparse, validation goals)"
        " + rllab/envs/goals/ant_valSet.pkl",
    },
    "block_push": {
        "default": _MAESN + "rllab/envs/mujoco/pusher.py (PusherEnv, train) + vendor/mujoco_models/pusher_env.xml"
        " + rllab/envs/goals/pusher_trainSet.pkl",
        "sparse": _MAESN + "rllab/envs/mujoco/pusher.py (PusherEnv, sparse, validation tasks)"
        " + rllab/envs/goals/pusher_valSet.pkl",
    },
}

DESCRIPTIONS = {
    "wheeled_nav": "MAESN two-wheeled robot, drive to a goal on a semicircle; dense or sparse (MJX or C MuJoCo)",
    "ant_goal_ring": "MAESN low-gear ant, walk to a goal on a semicircle; dense or sparse (MJX or C MuJoCo)",
    "block_push": "MAESN pusher, push the task's block (of 5) to its goal; dense or sparse (MJX or C MuJoCo)",
}

ENV_CLASSES = {"wheeled_nav": WheeledNav, "ant_goal_ring": AntGoalRing, "block_push": BlockPush}


def build(name: str, params: MaesnParams, variant: str):
    """Registry builder: (env, task distribution) of family ``name``."""
    return ENV_CLASSES[name](name, params, variant, SOURCES[name]), MaesnTaskDistribution(params, name)


for _family, _variants in VARIANTS.items():
    register(
        _family,
        EnvEntry(variants=_variants, build=functools.partial(build, _family), description=DESCRIPTIONS[_family]),
    )
del _family, _variants

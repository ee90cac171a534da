"""MuJoCo locomotion task families: cheetah_vel, cheetah_dir, ant_vel, ant_dir, ant_goal.

One class, :class:`Locomotion`, runs every published definition; a frozen :class:`LocomotionParams`
names each piece (model, observation layout, velocity source, reward terms, termination, reset
noise, task set). The variants in ``VARIANTS`` reproduce the reference implementations listed in
``SOURCES``; each env card (``docs/envs/<name>.md``) gives the definitions in full.

Physics is pluggable (:mod:`jmeta.envs.mujoco.physics`): ``physics="mujoco"`` steps MuJoCo's C engine
from inside jit, ``physics="mjx"`` runs MJX, ``"auto"`` picks by backend. Everything below the
physics step (observations, rewards, termination) is shared JAX code.

Conventions (gym-style ports): the env action is the motor control in [-1, 1]^nu (MuJoCo clamps
it; control costs use the action as received); dt = timestep * frame_skip; body positions and
contact forces are what ``mjData`` holds right after ``mj_step`` (see physics.py).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jmeta.envs.base import EnvSpec, StepOut
from jmeta.envs.mujoco import physics as phys
from jmeta.envs.mujoco.common import TORSO, MujocoState, unhealthy
from jmeta.envs.registry import EnvEntry, register
from jmeta.errors import ConfigError
from jmeta.spaces import Box
from jmeta.tasks import FixedSplit, TaskBank, TaskDistributionBase

ROBOTS = {"half_cheetah": "half_cheetah.xml", "ant": "ant.xml", "ant_rllab": "ant_rllab.xml"}
OBS_PARTS = ("torso_xpos", "qpos", "qpos_no_x", "qpos_no_xy", "qvel", "cfrc_clipped", "torso_xmat", "com")
VELOCITY_SOURCES = ("qpos_x", "torso_xpos", "com_velocity")
TASK_KINDS = ("velocity", "direction", "direction_angle", "goal")


@struct.dataclass
class LocomotionTask:
    """target: float32[2]. velocity: (v*, 0); direction: (d, 0) with d = ±1;
    direction_angle: (θ, 0), the direction (cos θ, sin θ); goal: the goal (x, y)."""

    target: jax.Array


#: The locomotion envs' state: the shared MuJoCo state pytree (qpos, qvel, xpos, xmat, cfrc_ext, time).
LocomotionState = MujocoState


@dataclasses.dataclass(frozen=True)
class LocomotionParams:
    """Static definition of one locomotion variant (every field overridable via ``jmeta.make``).

    robot: "half_cheetah" | "ant" | "ant_rllab" (models/<robot>.xml). task: "velocity" | "direction" | "direction_angle" | "goal".
    physics: "auto" | "mjx" | "mujoco". frame_skip: physics substeps per env step.
    fresh_view: body poses and contact forces from a forward pass at the new state (rllab) instead
      of what mjData holds right after mj_step (gym).
    mjx_iterations / mjx_ls_iterations: MJX solver overrides (0 keeps the MJCF's 100 / 50); 4 / 8
      is measured to match the MJCF's settings within float32 noise at 2-2.5x the speed
      (benchmarks/results/mjx_solver_cpu.json).
    obs: observation parts in order (OBS_PARTS). velocity_source: how v is measured.
    target_low/target_high: velocity task range; goal_set: "disk" | "box" with goal_extent.
    forward_weight: weight of the velocity term in direction tasks.
    ctrl_cost: weight of ||a||^2. contact_cost: weight of sum(clip(cfrc_ext, -1, 1)^2).
    bonus: constant added every step (e.g. 1.0 + 0.05 for rllab's ant velocity task).
    goal_offset: constant added to the goal term (rllab's ant goal: +4).
    goal_distance: "l1" | "sparse_l2" (1 - d within sparse_radius, else -sparse_radius).
    terminate: end the episode when the state is non-finite or torso z leaves [z_low, z_high].
    reset_noise: "uniform" (qpos + U(-qpos_noise, qpos_noise)) | "gaussian" (qpos + qpos_noise N);
    qvel always + qvel_noise N.
    fixed_tasks / held_out_tasks / task_set_seed: finite train/test task sets (PEARL); 0 = none.
    held_out_is_train: the held-out set is the training set (``fixed_tasks`` tasks; oyster's 2-task
    cheetah-dir and ant-dir configs train and evaluate on the same tasks).
    split: "train" | "test" (which fixed set ``sample`` draws from).
    """

    robot: str = "half_cheetah"
    task: str = "velocity"
    horizon: int = 200
    episodes_per_trial: int = 1
    physics: str = "auto"
    frame_skip: int = 5
    fresh_view: bool = False
    mjx_iterations: int = 4
    mjx_ls_iterations: int = 8
    obs: tuple[str, ...] = ("qpos_no_x", "qvel", "torso_xpos")
    velocity_source: str = "qpos_x"
    target_low: float = 0.0
    target_high: float = 2.0
    goal_set: str = "disk"
    goal_extent: float = 3.0
    direction_values: tuple[float, ...] = (-1.0, 1.0)
    forward_weight: float = 1.0
    ctrl_cost: float = 0.05
    contact_cost: float = 0.0
    bonus: float = 0.0
    goal_offset: float = 0.0
    goal_distance: str = "l1"
    sparse_radius: float = 0.75
    terminate: bool = False
    z_low: float = 0.2
    z_high: float = 1.0
    reset_noise: str = "uniform"
    qpos_noise: float = 0.1
    qvel_noise: float = 0.1
    fixed_tasks: int = 0
    held_out_tasks: int = 0
    task_set_seed: int = 0
    task_set_numpy_legacy: bool = False
    held_out_is_train: bool = False
    split: str = "train"

    def validate(self, name: str) -> None:
        def bad(field: str, value, valid) -> ConfigError:
            return ConfigError(f"{name}.{field}={value!r} is invalid; valid values are: {', '.join(map(str, valid))}")

        if self.robot not in ROBOTS:
            raise bad("robot", self.robot, ROBOTS)
        if self.task not in TASK_KINDS:
            raise bad("task", self.task, TASK_KINDS)
        if self.physics not in phys.PHYSICS_PATHS:
            raise bad("physics", self.physics, phys.PHYSICS_PATHS)
        for part in self.obs:
            if part not in OBS_PARTS:
                raise bad("obs", part, OBS_PARTS)
        if self.velocity_source not in VELOCITY_SOURCES:
            raise bad("velocity_source", self.velocity_source, VELOCITY_SOURCES)
        if self.goal_set not in ("disk", "box"):
            raise bad("goal_set", self.goal_set, ("disk", "box"))
        if self.goal_distance not in ("l1", "sparse_l2"):
            raise bad("goal_distance", self.goal_distance, ("l1", "sparse_l2"))
        if self.reset_noise not in ("uniform", "gaussian"):
            raise bad("reset_noise", self.reset_noise, ("uniform", "gaussian"))
        if self.split not in ("train", "test"):
            raise bad("split", self.split, ("train", "test"))
        if self.frame_skip < 1 or self.episodes_per_trial < 1:
            raise ConfigError(f"{name}.frame_skip and {name}.episodes_per_trial must be >= 1")
        if self.target_high < self.target_low:
            raise ConfigError(f"{name}.target_high must be >= target_low")
        if self.held_out_is_train and (self.fixed_tasks < 1 or self.held_out_tasks != self.fixed_tasks):
            raise ConfigError(f"{name}.held_out_is_train needs held_out_tasks == fixed_tasks >= 1")
        if self.split == "test" and self.held_out_tasks < 1:
            raise ConfigError(f"{name}.split='test' needs a variant with held-out tasks (held_out_tasks > 0)")
        uses_contact = self.contact_cost != 0.0 or "cfrc_clipped" in self.obs
        if uses_contact and not self.robot.startswith("ant"):
            raise ConfigError(f"{name}: contact forces are only defined for the ant here")


class Locomotion:
    """A MuJoCo locomotion task family; see the module docstring and the env cards."""

    VERSION = "2"  # 2: gym's cheetah masses exactly, float64 displacements, rllab ants' contacts at reset

    def __init__(self, name: str, params: LocomotionParams, variant: str, source: str | Mapping[str, str]):
        params.validate(name)
        self.name, self.params = name, params
        self.contact_forces = params.contact_cost != 0.0 or "cfrc_clipped" in params.obs
        self.physics = phys.make_physics(
            params.physics,
            ROBOTS[params.robot],
            params.frame_skip,
            self.contact_forces,
            phys.SolverSettings(params.mjx_iterations or None, params.mjx_ls_iterations or None),
            params.fresh_view,
            carry_body=TORSO if params.velocity_source == "torso_xpos" else None,
        )
        model = self.physics.model
        self._init_qpos = jnp.asarray(phys.initial_qpos(model), jnp.float32)
        obs_dim = sum(self._part_size(part) for part in params.obs)
        self.spec = EnvSpec.from_params(
            name, variant, params,
            observation_space=Box(float("-inf"), float("inf"), (obs_dim,)),
            action_space=Box(-1.0, 1.0, (model.nu,)),
            version=self.VERSION,
            source=source,
        )

    # ----------------------------------------------------------------------------- observation

    def _part_size(self, part: str) -> int:
        p = self.physics
        return {
            "torso_xpos": 3,
            "qpos": p.nq,
            "qpos_no_x": p.nq - 1,
            "qpos_no_xy": p.nq - 2,
            "qvel": p.nv,
            "cfrc_clipped": p.nbody * 6,
            "torso_xmat": 9,
            "com": 3,
        }[part]

    def observation(self, state: LocomotionState) -> jax.Array:
        """float32[obs_dim], the parts of ``params.obs`` concatenated in order."""
        parts = {
            "torso_xpos": lambda: state.xpos[TORSO],
            "qpos": lambda: state.qpos,
            "qpos_no_x": lambda: state.qpos[1:],
            "qpos_no_xy": lambda: state.qpos[2:],
            "qvel": lambda: state.qvel,
            "cfrc_clipped": lambda: jnp.clip(state.cfrc_ext, -1.0, 1.0).reshape(-1),
            "torso_xmat": lambda: state.xmat[TORSO],
            "com": lambda: self.center_of_mass(state.qpos, state.qvel)[0],
        }
        return jnp.concatenate([parts[name]() for name in self.params.obs]).astype(jnp.float32)

    def center_of_mass(self, qpos: jax.Array, qvel: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Whole-robot centre of mass and its linear velocity (rllab's ``get_body_com`` and
        ``get_body_comvel`` of the torso), float32[3] each, from a fresh forward pass in JAX."""
        return self.physics.subtree_com(qpos, qvel, TORSO)

    # ----------------------------------------------------------------------------- dynamics

    def task_features(self, task: LocomotionTask) -> jax.Array:
        """The task's free parameters: the goal (x, y) [2] for goal tasks, else the velocity, the
        direction sign or the angle [1] (the padding entry of ``target`` is dropped)."""
        return task.target if self.params.task == "goal" else task.target[..., :1]

    def reset(self, key: jax.Array, task: LocomotionTask) -> tuple[jax.Array, LocomotionState]:
        del task
        p = self.params
        k_pos, k_vel = jax.random.split(key)
        nq, nv = self.physics.nq, self.physics.nv
        if p.reset_noise == "uniform":
            noise = jax.random.uniform(k_pos, (nq,), jnp.float32, -p.qpos_noise, p.qpos_noise)
        else:
            noise = p.qpos_noise * jax.random.normal(k_pos, (nq,), jnp.float32)
        qpos = self._init_qpos + noise
        qvel = p.qvel_noise * jax.random.normal(k_vel, (nv,), jnp.float32)
        view = self.physics.reset_view(qpos, qvel)
        state = LocomotionState(
            qpos=view.qpos, qvel=view.qvel, xpos=view.xpos, xmat=view.xmat,
            cfrc_ext=view.cfrc_ext, time=jnp.zeros((), jnp.int32), exact=view.exact,
        )
        return self.observation(state), state

    def step(
        self, key: jax.Array, state: LocomotionState, action: jax.Array, task: LocomotionTask
    ) -> StepOut:
        del key  # deterministic physics
        action = action.astype(jnp.float32)
        out = self.physics.step(state.qpos, state.qvel, action, state.exact)
        new_state = LocomotionState(
            qpos=out.qpos, qvel=out.qvel, xpos=out.xpos, xmat=out.xmat,
            cfrc_ext=out.cfrc_ext, time=state.time + 1, exact=out.exact,
        )
        reward, info = self.reward(state, new_state, action, task)
        terminated = self.terminated(new_state)
        return StepOut(
            obs=self.observation(new_state),
            state=new_state,
            reward=reward,
            terminated=terminated,
            truncated=new_state.time >= self.params.horizon,
            info=info,
        )

    # ----------------------------------------------------------------------------- task terms

    def velocity(self, before: LocomotionState, after: LocomotionState) -> jax.Array:
        """float32[2] planar velocity as the variant measures it.

        Finite differences are taken in the precision the physics keeps its state in: on the C path
        from the carried float64 values (``rootx`` of qpos, or the torso's position), so that a robot
        8 m from the origin does not lose 2e-5 per step to float32 rounding of each position; on MJX
        (float32 throughout) from the float32 state."""
        p, dt, physics = self.params, self.physics.dt, self.physics
        if p.velocity_source == "qpos_x":
            before_x, after_x = physics.exact_qpos(before.exact, 0), physics.exact_qpos(after.exact, 0)
            if before_x is None:
                dx = after.qpos[0] - before.qpos[0]
            else:
                dx = phys.exact_difference(before_x, after_x)
            return jnp.stack([dx / dt, jnp.zeros((), jnp.float32)])
        if p.velocity_source == "torso_xpos":
            before_xy, after_xy = physics.exact_body_position(before.exact), physics.exact_body_position(after.exact)
            if before_xy is None:
                return (after.xpos[TORSO, :2] - before.xpos[TORSO, :2]) / dt
            return phys.exact_difference(before_xy[:2], after_xy[:2]) / dt
        return self.center_of_mass(after.qpos, after.qvel)[1][:2]

    def contact_penalty(self, state: LocomotionState) -> jax.Array:
        if not self.contact_forces:
            return jnp.zeros((), jnp.float32)
        return self.params.contact_cost * jnp.sum(jnp.square(jnp.clip(state.cfrc_ext, -1.0, 1.0)))

    def reward(
        self, before: LocomotionState, after: LocomotionState, action: jax.Array, task: LocomotionTask
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Scalar reward of the transition ``before -> after`` under ``action`` and its terms."""
        p = self.params
        ctrl = p.ctrl_cost * jnp.sum(jnp.square(action))
        contact = self.contact_penalty(after)
        velocity = self.velocity(before, after)
        if p.task == "velocity":
            task_term = -jnp.abs(velocity[0] - task.target[0])
        elif p.task == "direction":
            task_term = p.forward_weight * task.target[0] * velocity[0]
        elif p.task == "direction_angle":
            direction = jnp.stack([jnp.cos(task.target[0]), jnp.sin(task.target[0])])
            task_term = p.forward_weight * jnp.dot(velocity, direction)
        else:
            position = self._planar_position(after)
            if p.goal_distance == "l1":
                task_term = -jnp.sum(jnp.abs(position - task.target)) + p.goal_offset
            else:
                distance = jnp.linalg.norm(position - task.target)
                task_term = jnp.where(distance <= p.sparse_radius, 1.0 - distance, -p.sparse_radius)
        reward = task_term - ctrl - contact + p.bonus
        info = {
            "task_reward": task_term.astype(jnp.float32),
            "ctrl_cost": ctrl.astype(jnp.float32),
            "contact_cost": contact.astype(jnp.float32),
            "x_velocity": velocity[0].astype(jnp.float32),
        }
        return reward.astype(jnp.float32), info

    def _planar_position(self, state: LocomotionState) -> jax.Array:
        if self.params.velocity_source == "com_velocity":
            return self.center_of_mass(state.qpos, state.qvel)[0][:2]
        return state.xpos[TORSO, :2]

    def terminated(self, state: LocomotionState) -> jax.Array:
        p = self.params
        if not p.terminate:
            return jnp.zeros((), bool)
        return unhealthy(state.qpos, state.qvel, p.z_low, p.z_high)


# --------------------------------------------------------------------------------- task sets


@dataclasses.dataclass(frozen=True)
class LocomotionTaskDistribution(TaskDistributionBase):
    """Samples :class:`LocomotionTask` as the variant defines; finite sets when ``fixed_tasks``.

    ``fixed_split`` holds the variant's fixed train and held-out sets (None when tasks are drawn
    fresh); ``held_out`` is its held-out set (None without one).
    """

    params: LocomotionParams

    def sample(self, key: jax.Array) -> LocomotionTask:
        p = self.params
        if p.fixed_tasks:
            return self.fixed_split.sample(key, p.split)
        return _sample_fresh(p, key)

    @functools.cached_property
    def fixed_split(self) -> FixedSplit | None:
        return _fixed_split(self.params) if self.params.fixed_tasks else None

    @property
    def held_out(self) -> TaskBank | None:
        return None if self.fixed_split is None else self.fixed_split.held_out


def _sample_fresh(p: LocomotionParams, key: jax.Array) -> LocomotionTask:
    zero = jnp.zeros((), jnp.float32)
    if p.task == "velocity":
        target = jnp.stack([jax.random.uniform(key, (), jnp.float32, p.target_low, p.target_high), zero])
    elif p.task == "direction":
        values = jnp.asarray(p.direction_values, jnp.float32)
        target = jnp.stack([values[jax.random.randint(key, (), 0, len(p.direction_values))], zero])
    elif p.task == "direction_angle":
        if p.direction_values:
            values = jnp.asarray(p.direction_values, jnp.float32)
            angle = values[jax.random.randint(key, (), 0, len(p.direction_values))]
        else:
            angle = jax.random.uniform(key, (), jnp.float32, 0.0, 2 * jnp.pi)
        target = jnp.stack([angle, zero])
    elif p.goal_set == "disk":
        k_angle, k_radius = jax.random.split(key)
        angle = jax.random.uniform(k_angle, (), jnp.float32, 0.0, 2 * jnp.pi)
        radius = p.goal_extent * jnp.sqrt(jax.random.uniform(k_radius, (), jnp.float32))
        target = radius * jnp.stack([jnp.cos(angle), jnp.sin(angle)])
    else:
        target = jax.random.uniform(key, (2,), jnp.float32, -p.goal_extent, p.goal_extent)
    return LocomotionTask(target=target)


def _fixed_split(p: LocomotionParams) -> FixedSplit:
    """Train and held-out sets: the first ``fixed_tasks`` and the last ``held_out_tasks`` of one
    list (as PEARL splits ``range(n_tasks)``). With ``task_set_numpy_legacy`` the velocity targets
    are numpy's legacy ``seed(task_set_seed); uniform(low, high, n)`` draw (PEARL's cheetah-vel).

    Always computed eagerly (:class:`FixedSplit`): the split is cached on the distribution, so it
    must hold concrete arrays even when first requested while ``sample`` is being traced."""
    total = p.fixed_tasks + p.held_out_tasks
    if p.task == "direction" and p.fixed_tasks == len(p.direction_values):
        # PEARL cheetah-dir: train = test = both directions.
        with jax.ensure_compile_time_eval():
            values = jnp.asarray(p.direction_values, jnp.float32)
            tasks = LocomotionTask(target=jnp.stack([values, jnp.zeros_like(values)], axis=1))
        return FixedSplit.from_tasks(tasks, p.fixed_tasks, p.fixed_tasks if p.held_out_tasks else 0)
    if p.held_out_is_train:
        with jax.ensure_compile_time_eval():
            keys = jax.random.split(jax.random.key(p.task_set_seed), p.fixed_tasks)
            tasks = jax.vmap(functools.partial(_sample_fresh, p))(keys)
        return FixedSplit.from_tasks(tasks, p.fixed_tasks, p.fixed_tasks)
    if p.task_set_numpy_legacy:
        rng = np.random.RandomState(p.task_set_seed)
        values = rng.uniform(p.target_low, p.target_high, size=(total,)).astype(np.float32)
        with jax.ensure_compile_time_eval():
            targets = jnp.stack([jnp.asarray(values), jnp.zeros(total, jnp.float32)], axis=1)
        return FixedSplit.from_tasks(LocomotionTask(target=targets), p.fixed_tasks, p.held_out_tasks)
    return FixedSplit.from_seed(functools.partial(_sample_fresh, p), p.task_set_seed, p.fixed_tasks, p.held_out_tasks)


# --------------------------------------------------------------------------------- definitions

_CHEETAH = LocomotionParams()  # pytorch-maml-rl HalfCheetahVel: obs 20, v from qpos[0], U[0, 2]
_CHEETAH_RLLAB = dataclasses.replace(
    _CHEETAH,
    frame_skip=1,  # rllab reads frame_skip from the MJCF; its half_cheetah.xml sets none -> 1
    obs=("qpos_no_x", "qvel", "com"),
    velocity_source="com_velocity",
    reset_noise="gaussian",
    qpos_noise=0.01,
)
_ANT = LocomotionParams(
    robot="ant",
    task="velocity",
    obs=("qpos", "qvel", "cfrc_clipped", "torso_xmat", "torso_xpos"),
    velocity_source="torso_xpos",
    target_low=0.0,
    target_high=3.0,
    ctrl_cost=0.005,
    contact_cost=5e-4,
    bonus=1.0 + 0.05,
    terminate=True,
)
_ANT_27 = ("qpos_no_xy", "qvel")
_ANT_113 = ("qpos", "qvel", "cfrc_clipped")

_ANT_RLLAB = dataclasses.replace(
    _ANT,
    robot="ant_rllab",
    frame_skip=1,  # rllab: timestep 0.02, frame_skip 1
    fresh_view=True,  # rllab calls model.forward() after stepping and reads com/xmat/cfrc from it
    obs=("qpos", "qvel", "cfrc_clipped", "torso_xmat", "com"),
    velocity_source="com_velocity",
    reset_noise="gaussian",
    qpos_noise=0.01,
)

VARIANTS: dict[str, dict[str, LocomotionParams]] = {
    "cheetah_vel": {
        "default": _CHEETAH,
        "maml_rllab": _CHEETAH_RLLAB,
        "promp": dataclasses.replace(_CHEETAH, obs=("qpos_no_x", "qvel"), target_high=3.0, horizon=100),
        "pearl": dataclasses.replace(
            _CHEETAH, target_high=3.0, fixed_tasks=100, held_out_tasks=30,
            task_set_seed=1337, task_set_numpy_legacy=True,
        ),
        "varibad": dataclasses.replace(_CHEETAH, target_high=3.0, episodes_per_trial=2),
    },
    "cheetah_dir": {
        "default": dataclasses.replace(_CHEETAH, task="direction"),
        "maml_rllab": dataclasses.replace(_CHEETAH_RLLAB, task="direction"),
        "pearl": dataclasses.replace(_CHEETAH, task="direction", fixed_tasks=2, held_out_tasks=2),
        "promp": dataclasses.replace(_CHEETAH, task="direction", obs=("qpos_no_x", "qvel"), horizon=100),
    },
    "ant_vel": {
        "default": _ANT,
        "maml_rllab": _ANT_RLLAB,
    },
    "ant_dir": {
        "default": dataclasses.replace(_ANT, task="direction", bonus=0.05),
        "maml_rllab": dataclasses.replace(_ANT_RLLAB, task="direction", bonus=0.05),
        "promp": dataclasses.replace(
            _ANT, task="direction", obs=("qpos_no_xy", "qvel", "cfrc_clipped"),
            ctrl_cost=0.5, bonus=1.0, z_low=0.0,
        ),
        "pearl": dataclasses.replace(
            _ANT, task="direction_angle", direction_values=(), obs=_ANT_27, ctrl_cost=0.5, bonus=1.0,
        ),
        "pearl_2tasks": dataclasses.replace(
            _ANT, task="direction_angle", direction_values=(), obs=_ANT_27, ctrl_cost=0.5, bonus=1.0,
            fixed_tasks=2, held_out_tasks=2, held_out_is_train=True, task_set_seed=20_190_101,
        ),
        "varibad": dataclasses.replace(
            _ANT, task="direction_angle", direction_values=(-1.0, 1.0), obs=_ANT_27, ctrl_cost=0.5,
            bonus=1.0, episodes_per_trial=2,
        ),
    },
    "ant_goal": {
        "default": dataclasses.replace(
            _ANT, task="goal", obs=_ANT_113, ctrl_cost=0.1, bonus=0.0, terminate=False,
        ),
        "maml": dataclasses.replace(
            _ANT, task="goal", goal_set="box", goal_offset=4.0, bonus=0.05,
        ),
        "pearl": dataclasses.replace(
            _ANT, task="goal", obs=_ANT_113, ctrl_cost=0.1, bonus=0.0, terminate=False,
            fixed_tasks=150, held_out_tasks=30, task_set_seed=20_190_101,
        ),
        "sparse": dataclasses.replace(
            _ANT, task="goal", obs=("torso_xpos",) + _ANT_113, ctrl_cost=0.01, bonus=0.0,
            terminate=False, goal_distance="sparse_l2", sparse_radius=0.75, episodes_per_trial=6,
        ),
    },
}

_PMRL = "tristandeleu/pytorch-maml-rl maml_rl/envs/mujoco/{}"
SOURCES: dict[str, dict[str, str]] = {
    "cheetah_vel": {
        "default": _PMRL.format("half_cheetah.py (HalfCheetahVelEnv)"),
        "maml_rllab": "cbfinn/maml_rl rllab/envs/mujoco/half_cheetah_env_rand.py",
        "promp": "jonasrothfuss/ProMP meta_policy_search/envs/mujoco_envs/half_cheetah_rand_vel.py",
        "pearl": "katerakelly/oyster rlkit/envs/half_cheetah_vel.py + configs/cheetah-vel.json",
        "varibad": "lmzintgraf/varibad environments/mujoco/half_cheetah_vel.py",
    },
    "cheetah_dir": {
        "default": _PMRL.format("half_cheetah.py (HalfCheetahDirEnv)"),
        "maml_rllab": "cbfinn/maml_rl rllab/envs/mujoco/half_cheetah_env_rand_direc.py",
        "pearl": "katerakelly/oyster rlkit/envs/half_cheetah_dir.py + configs/cheetah-dir.json",
        "promp": "jonasrothfuss/ProMP meta_policy_search/envs/mujoco_envs/half_cheetah_rand_direc.py",
    },
    "ant_vel": {
        "default": _PMRL.format("ant.py (AntVelEnv)"),
        "maml_rllab": "cbfinn/maml_rl rllab/envs/mujoco/ant_env_rand.py + vendor/mujoco_models/ant.xml",
    },
    "ant_dir": {
        "default": _PMRL.format("ant.py (AntDirEnv)"),
        "maml_rllab": "cbfinn/maml_rl rllab/envs/mujoco/ant_env_rand_direc.py + vendor/mujoco_models/ant.xml",
        "promp": "jonasrothfuss/ProMP meta_policy_search/envs/mujoco_envs/ant_rand_direc.py",
        "pearl": "katerakelly/oyster rlkit/envs/ant_dir.py",
        "pearl_2tasks": "katerakelly/oyster rlkit/envs/ant_dir.py + configs/ant-dir.json (n_tasks 2)",
        "varibad": "lmzintgraf/varibad environments/mujoco/ant_dir.py",
    },
    "ant_goal": {
        "default": "jonasrothfuss/ProMP meta_policy_search/envs/mujoco_envs/ant_rand_goal.py "
        "(= oyster rlkit/envs/ant_goal.py = varibad environments/mujoco/ant_goal.py)",
        "maml": _PMRL.format("ant.py (AntPosEnv; cbfinn/maml_rl ant_env_rand_goal.py on gym physics)"),
        "pearl": "katerakelly/oyster rlkit/envs/ant_goal.py + configs/ant-goal.json",
        "sparse": "lmzintgraf/hyperx environments/mujoco/ant_goal.py (AntGoalSparseEnv)",
    },
}

DESCRIPTIONS = {
    "cheetah_vel": "HalfCheetah, run at a target velocity (MJX or C MuJoCo)",
    "cheetah_dir": "HalfCheetah, run forward or backward (MJX or C MuJoCo)",
    "ant_vel": "Ant, run at a target velocity along x, contact costs (MJX or C MuJoCo)",
    "ant_dir": "Ant, run in a task direction, contact costs (MJX or C MuJoCo)",
    "ant_goal": "Ant, reach a goal position in the plane, contact costs (MJX or C MuJoCo)",
}


def build(name: str, params: LocomotionParams, variant: str):
    """Registry builder: (env, task distribution) of family ``name``."""
    return Locomotion(name, params, variant, SOURCES[name]), LocomotionTaskDistribution(params)


for _family, _variants in VARIANTS.items():
    register(
        _family,
        EnvEntry(variants=_variants, build=functools.partial(build, _family), description=DESCRIPTIONS[_family]),
    )
del _family, _variants

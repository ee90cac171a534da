"""Two interchangeable physics paths for the MuJoCo environments.

An environment owns a :class:`Physics` and only ever calls ``physics.step(qpos, qvel, ctrl)``
(one env step = ``frame_skip`` physics substeps) and ``physics.reset_view(qpos)``. Observation,
reward and termination code is JAX on top of the returned :class:`PhysicsOut`, so both paths give
the same task:

* ``"mjx"`` (:class:`MjxPhysics`): pure JAX through ``mujoco.mjx``; vmaps and runs on any
  accelerator. Solver settings may be overridden for speed (:class:`SolverSettings`).
* ``"mujoco"`` (:class:`MujocoPhysics`): MuJoCo's C engine, called from inside the jitted program
  through one ``jax.pure_callback`` per env step over the whole batch (every vmapped axis is
  flattened into one batch), multi-threaded with ``mujoco.rollout``. The fast path on CPU.
* ``"auto"``: ``"mujoco"`` when JAX's default backend is the CPU, else ``"mjx"``.

What MuJoCo's ``mjData`` holds after a step is part of the published task definitions (gym-style
envs read ``data.xpos`` and ``data.cfrc_ext`` right after ``mj_step``): body positions are those of
the last forward evaluation inside the step (for Euler the state before the last substep, for RK4
its last stage), and contact forces are filled by ``mj_rnePostConstraint`` after the step (as
gymnasium does). Both paths return exactly these quantities. With ``fresh_view=True`` (rllab's
semantics: ``model.forward()`` after stepping) they are instead those of a forward pass at the new
state.

The C path carries no gradient: actions enter the callback through ``stop_gradient``
(policy-gradient methods need none).
"""

from __future__ import annotations

import abc
import copy
import dataclasses
import functools
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from flax import struct

from jmeta.envs.mujoco.assets import model_path
from jmeta.errors import ConfigError

PHYSICS_PATHS = ("auto", "mjx", "mujoco")


def resolve_physics(physics: str) -> str:
    """Maps ``"auto"`` to ``"mujoco"`` on CPU and ``"mjx"`` elsewhere; validates the name."""
    if physics not in PHYSICS_PATHS:
        raise ConfigError(f"unknown physics {physics!r}; valid choices are: {', '.join(PHYSICS_PATHS)}")
    if physics == "auto":
        return "mujoco" if jax.default_backend() == "cpu" else "mjx"
    return physics


@functools.cache
def load_model(xml_name: str) -> mujoco.MjModel:
    """Compiles the packaged model ``models/<xml_name>`` (cached per process). Treat the result as read-only."""
    return mujoco.MjModel.from_xml_path(model_path(xml_name))


@dataclasses.dataclass(frozen=True)
class SolverSettings:
    """Overrides of ``mjModel.opt`` applied on the MJX path only (None keeps the MJCF value).

    iterations: main solver iterations; ls_iterations: line-search iterations.
    """

    iterations: int | None = None
    ls_iterations: int | None = None


@struct.dataclass
class PhysicsOut:
    """The physics state after one env step (per env; batch axes lead when vmapped).

    qpos: float32[nq]; qvel: float32[nv].
    xpos: float32[nbody, 3], body frame positions as ``mjData.xpos`` holds them after ``mj_step``.
    xmat: float32[nbody, 9], body orientations (row-major rotation matrices), likewise.
    cfrc_ext: float32[nbody, 6], contact wrenches (torque, force) per body after
      ``mj_rnePostConstraint``; shape [0, 6] when the physics was built without contact forces.
    """

    qpos: jax.Array
    qvel: jax.Array
    xpos: jax.Array
    xmat: jax.Array
    cfrc_ext: jax.Array


class Physics(abc.ABC):
    """Base: the model, the substep count and the shared JAX kinematics (both paths)."""

    name: str = ""

    def __init__(self, model: mujoco.MjModel, frame_skip: int, contact_forces: bool, fresh_view: bool = False):
        if frame_skip < 1:
            raise ConfigError(f"frame_skip must be >= 1, got {frame_skip}")
        self.model = model
        self.frame_skip = frame_skip
        self.contact_forces = contact_forces
        self.fresh_view = fresh_view
        self.nq, self.nv, self.nu, self.nbody = model.nq, model.nv, model.nu, model.nbody
        self.dt = float(model.opt.timestep) * frame_skip
        self._kin_model = _mjx().put_model(model)

    @property
    def ncfrc(self) -> int:
        return self.nbody if self.contact_forces else 0

    def body_poses(self, qpos: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Forward kinematics in JAX (``mj_kinematics``): float32[nq] -> (xpos float32[nbody, 3],
        xmat float32[nbody, 9])."""
        mjx = _mjx()
        data = mjx.kinematics(self._kin_model, mjx.make_data(self._kin_model).replace(qpos=qpos))
        return data.xpos.astype(jnp.float32), data.xmat.reshape(self.nbody, 9).astype(jnp.float32)

    def subtree_com(self, qpos: jax.Array, qvel: jax.Array, body: int) -> tuple[jax.Array, jax.Array]:
        """Centre of mass of ``body``'s subtree and its linear velocity at state (qpos, qvel),
        float32[3] each (``mjData.subtree_com`` and ``subtree_linvel`` after ``mj_forward``)."""
        mjx = _mjx()
        m = self._kin_model
        data = mjx.make_data(m).replace(qpos=qpos, qvel=qvel)
        data = mjx.kinematics(m, data)
        data = mjx.com_pos(m, data)
        data = mjx.com_vel(m, data)
        data = mjx.subtree_vel(m, data)
        linvel = getattr(getattr(data, "_impl", data), "subtree_linvel", None)
        if linvel is None:
            linvel = data.subtree_linvel
        return data.subtree_com[body].astype(jnp.float32), linvel[body].astype(jnp.float32)

    def reset_view(self, qpos: jax.Array, qvel: jax.Array) -> PhysicsOut:
        """What ``mjData`` shows after ``mj_resetData`` + setting qpos/qvel + ``mj_forward``.

        Contact forces read zero there (``mj_forward`` does not run ``mj_rnePostConstraint``).
        """
        xpos, xmat = self.body_poses(qpos)
        return PhysicsOut(
            qpos=qpos.astype(jnp.float32),
            qvel=qvel.astype(jnp.float32),
            xpos=xpos,
            xmat=xmat,
            cfrc_ext=jnp.zeros((self.ncfrc, 6), jnp.float32),
        )

    @abc.abstractmethod
    def step(self, qpos: jax.Array, qvel: jax.Array, ctrl: jax.Array) -> PhysicsOut:
        """One env step of ``frame_skip`` substeps with ``ctrl`` held (float32[nu])."""


def _mjx():
    from mujoco import mjx  # imported lazily: it logs a harmless warning about warp

    return mjx


class MjxPhysics(Physics):
    """Pure-JAX physics through ``mujoco.mjx`` (vmappable, differentiable, any accelerator)."""

    name = "mjx"

    def __init__(
        self,
        model: mujoco.MjModel,
        frame_skip: int,
        contact_forces: bool,
        solver: SolverSettings = SolverSettings(),
        fresh_view: bool = False,
    ):
        super().__init__(model, frame_skip, contact_forces, fresh_view)
        self.solver = solver
        model_copy = copy.copy(model)  # the cached model stays as the MJCF defines it
        if solver.iterations is not None:
            model_copy.opt.iterations = solver.iterations
        if solver.ls_iterations is not None:
            model_copy.opt.ls_iterations = solver.ls_iterations
        self.mjx_model = _mjx().put_model(model_copy)

    def step(self, qpos: jax.Array, qvel: jax.Array, ctrl: jax.Array) -> PhysicsOut:
        mjx = _mjx()
        data = mjx.make_data(self.mjx_model).replace(qpos=qpos, qvel=qvel, ctrl=ctrl)

        def substep(d, _):
            return mjx.step(self.mjx_model, d), None

        data, _ = jax.lax.scan(substep, data, None, length=self.frame_skip)
        if self.fresh_view:
            data = mjx.forward(self.mjx_model, data)
        if self.contact_forces:
            cfrc = _mjx_cfrc_ext(mjx.rne_postconstraint(self.mjx_model, data))
        else:
            cfrc = jnp.zeros((0, 6), jnp.float32)
        return PhysicsOut(
            qpos=data.qpos.astype(jnp.float32),
            qvel=data.qvel.astype(jnp.float32),
            xpos=data.xpos.astype(jnp.float32),
            xmat=data.xmat.reshape(self.nbody, 9).astype(jnp.float32),
            cfrc_ext=cfrc.astype(jnp.float32),
        )


def _mjx_cfrc_ext(data) -> jax.Array:
    impl = getattr(data, "_impl", None)
    if impl is not None and hasattr(impl, "cfrc_ext"):
        return impl.cfrc_ext
    return data.cfrc_ext


class MujocoPhysics(Physics):
    """MuJoCo's C engine stepping the whole batch from inside jit (one host callback per step).

    The callback flattens every vmapped axis into one batch and steps it on ``nthread`` threads:
    ``mujoco.rollout`` for the first ``frame_skip - 1`` substeps; the last substep runs per env
    (``mj_step`` then, with contact forces, ``mj_rnePostConstraint``) only when the env reads
    quantities from inside the step (contact forces, or body positions under RK4, whose last
    forward evaluation is an intermediate stage). Otherwise ``mujoco.rollout`` runs all substeps
    and body positions are recomputed in JAX from the state before the last substep, which is
    what ``mjData.xpos`` holds after an Euler step.
    """

    name = "mujoco"

    def __init__(
        self,
        model: mujoco.MjModel,
        frame_skip: int,
        contact_forces: bool,
        nthread: int | None = None,
        fresh_view: bool = False,
    ):
        super().__init__(model, frame_skip, contact_forces, fresh_view)
        self.nthread = nthread or max(1, os.cpu_count() or 1)
        rk4 = model.opt.integrator == mujoco.mjtIntegrator.mjINT_RK4
        self.per_env_last_substep = contact_forces or (rk4 and not fresh_view)
        self._state_size = mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_FULLPHYSICS)
        self._qpos_at = mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_TIME)
        self._qvel_at = self._qpos_at + model.nq
        self._host = _HostEngine(self)

    def step(self, qpos: jax.Array, qvel: jax.Array, ctrl: jax.Array) -> PhysicsOut:
        qpos, qvel, ctrl = (jax.lax.stop_gradient(x.astype(jnp.float32)) for x in (qpos, qvel, ctrl))
        f32 = jnp.float32
        if self.per_env_last_substep:
            shapes = (
                jax.ShapeDtypeStruct((self.nq,), f32),
                jax.ShapeDtypeStruct((self.nv,), f32),
                jax.ShapeDtypeStruct((self.nbody, 3), f32),
                jax.ShapeDtypeStruct((self.nbody, 9), f32),
                jax.ShapeDtypeStruct((self.ncfrc, 6), f32),
            )
            new_qpos, new_qvel, xpos, xmat, cfrc = jax.pure_callback(
                self._host.step_per_env_last, shapes, qpos, qvel, ctrl, vmap_method="broadcast_all"
            )
        else:
            shapes = (
                jax.ShapeDtypeStruct((self.nq,), f32),
                jax.ShapeDtypeStruct((self.nv,), f32),
                jax.ShapeDtypeStruct((self.nq,), f32),
            )
            new_qpos, new_qvel, qpos_before_last = jax.pure_callback(
                self._host.step_rollout, shapes, qpos, qvel, ctrl, vmap_method="broadcast_all"
            )
            xpos, xmat = self.body_poses(new_qpos if self.fresh_view else qpos_before_last)
            cfrc = jnp.zeros((0, 6), f32)
        return PhysicsOut(qpos=new_qpos, qvel=new_qvel, xpos=xpos, xmat=xmat, cfrc_ext=cfrc)


class _HostEngine:
    """Host side of :class:`MujocoPhysics`: thread pool, per-thread mjData, numpy buffers.

    Created lazily per process (thread pools do not survive pickling or fork).
    """

    def __init__(self, physics: MujocoPhysics):
        self.p = physics
        self._lock = threading.Lock()
        self._rollout = None
        self._pool: ThreadPoolExecutor | None = None
        self._datas: list[mujoco.MjData] = []
        self._pid = None

    def _ensure(self) -> None:
        if self._rollout is not None and self._pid == os.getpid():
            return
        from mujoco import rollout

        self._rollout = rollout.Rollout(nthread=self.p.nthread)
        self._datas = [mujoco.MjData(self.p.model) for _ in range(self.p.nthread)]
        self._pool = ThreadPoolExecutor(self.p.nthread, thread_name_prefix="jmeta-mujoco")
        self._pid = os.getpid()

    def _initial_states(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        p = self.p
        state = np.zeros((qpos.shape[0], p._state_size), np.float64)
        state[:, p._qpos_at : p._qpos_at + p.nq] = qpos
        state[:, p._qvel_at : p._qvel_at + p.nv] = qvel
        return state

    def _run_rollout(self, state0: np.ndarray, ctrl: np.ndarray, nstep: int) -> np.ndarray:
        """[B, nstate] states and [B, nu] controls -> [B, nstep, nstate] states."""
        control = np.ascontiguousarray(np.broadcast_to(ctrl[:, None, :], (ctrl.shape[0], nstep, ctrl.shape[1])))
        out = np.empty((state0.shape[0], nstep, self.p._state_size), np.float64)
        self._rollout.rollout(
            self.p.model, self._datas, state0, control, nstep=nstep, state=out
        )
        return out

    def step_rollout(self, qpos, qvel, ctrl):
        """All substeps in ``mujoco.rollout``. Returns (qpos', qvel', qpos before the last substep)."""
        p = self.p
        batch_shape = np.shape(qpos)[:-1]
        qpos2, qvel2, ctrl2 = _flatten(qpos, p.nq), _flatten(qvel, p.nv), _flatten(ctrl, p.nu)
        with self._lock:
            self._ensure()
            state0 = self._initial_states(qpos2, qvel2)
            states = self._run_rollout(state0, ctrl2, p.frame_skip)
        final = states[:, -1]
        before_last = states[:, -2] if p.frame_skip > 1 else state0
        return (
            _unflatten(final[:, p._qpos_at : p._qpos_at + p.nq], batch_shape),
            _unflatten(final[:, p._qvel_at : p._qvel_at + p.nv], batch_shape),
            _unflatten(before_last[:, p._qpos_at : p._qpos_at + p.nq], batch_shape),
        )

    def step_per_env_last(self, qpos, qvel, ctrl):
        """First substeps in ``mujoco.rollout``, the last one per env so mjData can be read."""
        p = self.p
        batch_shape = np.shape(qpos)[:-1]
        qpos2, qvel2, ctrl2 = _flatten(qpos, p.nq), _flatten(qvel, p.nv), _flatten(ctrl, p.nu)
        batch = qpos2.shape[0]
        out_qpos = np.empty((batch, p.nq), np.float32)
        out_qvel = np.empty((batch, p.nv), np.float32)
        out_xpos = np.empty((batch, p.nbody, 3), np.float32)
        out_xmat = np.empty((batch, p.nbody, 9), np.float32)
        out_cfrc = np.empty((batch, p.ncfrc, 6), np.float32)
        with self._lock:
            self._ensure()
            state = self._initial_states(qpos2, qvel2)
            if p.frame_skip > 1:
                state = self._run_rollout(state, ctrl2, p.frame_skip - 1)[:, -1]
            spec = mujoco.mjtState.mjSTATE_FULLPHYSICS

            def last_substep(thread: int, lo: int, hi: int) -> None:
                data = self._datas[thread]
                for i in range(lo, hi):
                    mujoco.mj_setState(p.model, data, state[i], spec)
                    data.ctrl[:] = ctrl2[i]
                    mujoco.mj_step(p.model, data)
                    if p.fresh_view:
                        mujoco.mj_forward(p.model, data)
                    out_qpos[i] = data.qpos
                    out_qvel[i] = data.qvel
                    out_xpos[i] = data.xpos
                    out_xmat[i] = data.xmat
                    if p.contact_forces:
                        mujoco.mj_rnePostConstraint(p.model, data)
                        out_cfrc[i] = data.cfrc_ext

            chunk = math.ceil(batch / p.nthread)
            jobs = [
                self._pool.submit(last_substep, t, t * chunk, min(batch, (t + 1) * chunk))
                for t in range(p.nthread)
                if t * chunk < batch
            ]
            for job in jobs:
                job.result()
        return (
            out_qpos.reshape(*batch_shape, p.nq),
            out_qvel.reshape(*batch_shape, p.nv),
            out_xpos.reshape(*batch_shape, p.nbody, 3),
            out_xmat.reshape(*batch_shape, p.nbody, 9),
            out_cfrc.reshape(*batch_shape, p.ncfrc, 6),
        )


def _flatten(x, width: int) -> np.ndarray:
    return np.asarray(x, np.float64).reshape(-1, width)


def _unflatten(x: np.ndarray, batch_shape: tuple[int, ...]) -> np.ndarray:
    return np.ascontiguousarray(x, np.float32).reshape(*batch_shape, x.shape[-1])


def make_physics(
    physics: str,
    xml_name: str,
    frame_skip: int,
    contact_forces: bool,
    solver: SolverSettings = SolverSettings(),
    fresh_view: bool = False,
) -> Physics:
    """Builds the physics path named by ``physics`` ("auto" | "mjx" | "mujoco") for a model."""
    path = resolve_physics(physics)
    model = load_model(xml_name)
    if path == "mjx":
        return MjxPhysics(model, frame_skip, contact_forces, solver, fresh_view)
    return MujocoPhysics(model, frame_skip, contact_forces, fresh_view=fresh_view)


def initial_qpos(model: mujoco.MjModel) -> np.ndarray:
    """The MJCF's ``<numeric name="init_qpos">`` when it defines one (rllab models), else qpos0."""
    index = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_NUMERIC, "init_qpos")
    if index < 0:
        return np.array(model.qpos0)
    start, size = model.numeric_adr[index], model.numeric_size[index]
    return np.array(model.numeric_data[start : start + size])

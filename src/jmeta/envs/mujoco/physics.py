"""Two interchangeable physics paths for the MuJoCo environments.

An environment owns a :class:`Physics` and only ever calls ``physics.step(qpos, qvel, ctrl, exact)``
(one env step = ``frame_skip`` physics substeps) and ``physics.reset_view(qpos, qvel)``. Observation,
reward and termination code is JAX on top of the returned :class:`PhysicsOut`, so both paths give
the same task:

* ``"mjx"`` (:class:`MjxPhysics`): pure JAX through ``mujoco.mjx``; vmaps and runs on any
  accelerator. Solver settings may be overridden for speed (:class:`SolverSettings`).
* ``"mujoco"`` (:class:`MujocoPhysics`): MuJoCo's C engine, called from inside the jitted program
  through one ``jax.pure_callback`` per env step over the whole batch (every vmapped axis is
  flattened into one batch), multi-threaded. The fast path on CPU.
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

**Exact state on the C path.** MuJoCo integrates in float64, and JAX (without x64) holds float32.
So that nothing is lost between env steps, the C path also returns ``PhysicsOut.exact``: its whole
float64 state (qpos, qvel, actuator state and the constraint solver's warm start) as uint32 pairs
[nexact, 2] (little-endian words), which the env carries and hands back to the next step. A
free-running rollout then equals float64 MuJoCo step for step; qpos and qvel (float32, rounded
from the exact values) are views for observations, rewards and termination. The MJX path
computes in float32 and carries an empty ``exact`` [0, 2].
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
    """Compiles the packaged model ``models/<xml_name>`` (cached per process). Treat the result as read-only.

    A model whose MJCF defines ``<numeric name="total_mass">`` gets MuJoCo's deprecated compiler
    attribute ``settotalmass`` applied after compiling: every body mass and inertia scaled so that
    the masses sum to it (``mj_setTotalmass``), then the derived constants recomputed
    (``mj_setConst``). The compiler does the same, so the result equals the model compiled from the
    original MJCF bit for bit (gym's half_cheetah.xml sets ``settotalmass="14"``).
    """
    model = mujoco.MjModel.from_xml_path(model_path(xml_name))
    total_mass = _custom_numeric(model, "total_mass")
    if total_mass is not None:
        mujoco.mj_setTotalmass(model, float(total_mass[0]))
        mujoco.mj_setConst(model, mujoco.MjData(model))
    return model


def _custom_numeric(model: mujoco.MjModel, name: str) -> np.ndarray | None:
    """The MJCF's ``<custom><numeric name=...>`` data as float64[size], or None when it is absent."""
    index = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_NUMERIC, name)
    if index < 0:
        return None
    start, size = model.numeric_adr[index], model.numeric_size[index]
    return np.array(model.numeric_data[start : start + size])


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
    exact: uint32[nexact, 2], the float64 state the C path carries (see the module docstring),
      or uint32[0, 2] where the physics is float32 (MJX).
    """

    qpos: jax.Array
    qvel: jax.Array
    xpos: jax.Array
    xmat: jax.Array
    cfrc_ext: jax.Array
    exact: jax.Array


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

    @property
    def nexact(self) -> int:
        """Rows of ``PhysicsOut.exact``: the size of the float64 state the path carries (0: none)."""
        return 0

    def exact_qpos(self, exact: jax.Array, index: int) -> jax.Array | None:
        """uint32[2]: the float64 encoding of ``qpos[index]`` in the carried state, or None where the
        path carries none (MJX)."""
        return exact[index] if exact.shape[-2] else None

    def exact_body_position(self, exact: jax.Array) -> jax.Array | None:
        """uint32[3, 2]: the float64 position of the carried body (``carry_body``) as ``mjData.xpos``
        holds it after the step, or None where the path carries none."""
        del exact
        return None

    def exact_state(self, qpos: jax.Array, qvel: jax.Array) -> jax.Array:
        """uint32[nexact, 2]: the carried state after a reset at (qpos, qvel); empty where none is carried."""
        del qpos, qvel
        return jnp.zeros((0, 2), jnp.uint32)

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

        Contact forces: gym-style envs (``fresh_view=False``) read zero there, since current MuJoCo's
        ``mj_forward`` does not run ``mj_rnePostConstraint``. rllab (``fresh_view=True``) ran MuJoCo
        1.31, whose forward pass computed them, so an rllab ant standing on its feet observes its
        ground contacts from the first step: with ``fresh_view`` they are the forces of a forward
        pass at the reset state (:meth:`reset_contact_forces`).
        """
        xpos, xmat = self.body_poses(qpos)
        if self.fresh_view and self.contact_forces:
            cfrc = self.reset_contact_forces(qpos, qvel)
        else:
            cfrc = jnp.zeros((self.ncfrc, 6), jnp.float32)
        return PhysicsOut(
            qpos=qpos.astype(jnp.float32),
            qvel=qvel.astype(jnp.float32),
            xpos=xpos,
            xmat=xmat,
            cfrc_ext=cfrc,
            exact=self.exact_state(qpos, qvel),
        )

    @abc.abstractmethod
    def reset_contact_forces(self, qpos: jax.Array, qvel: jax.Array) -> jax.Array:
        """float32[nbody, 6]: ``cfrc_ext`` after ``mj_forward`` + ``mj_rnePostConstraint`` at the state
        (qpos, qvel) with a zero solver warm start (a freshly reset ``mjData``)."""

    @abc.abstractmethod
    def step(self, qpos: jax.Array, qvel: jax.Array, ctrl: jax.Array, exact: jax.Array | None = None) -> PhysicsOut:
        """One env step of ``frame_skip`` substeps with ``ctrl`` held (float32[nu]).

        ``exact`` (uint32[nexact, 2], the previous ``PhysicsOut.exact``) is the state the step
        starts from where the path carries one; None or an empty array starts from qpos, qvel.
        """


def float64_bits(x: jax.Array) -> jax.Array:
    """float32[...] -> uint32[..., 2]: the IEEE-754 float64 encoding of each value (which is exact),
    as (low word, high word), i.e. what ``numpy.asarray(x, '<f8').view('<u4')`` gives.

    Pure JAX without x64: normals re-bias the exponent (127 -> 1023) and shift the mantissa by 29
    bits; float32 subnormals become float64 normals; zeros, infinities and NaNs keep their class.
    """
    bits = jax.lax.bitcast_convert_type(x.astype(jnp.float32), jnp.uint32)
    sign = bits >> 31
    exponent = (bits >> 23) & 0xFF
    mantissa = bits & 0x7FFFFF
    # subnormal: value = mantissa * 2^-149 = 2^(top - 149) * 1.f, top = index of the leading one
    top = 31 - jax.lax.clz(jnp.maximum(mantissa, 1)).astype(jnp.int32)
    sub_mantissa = (mantissa << (23 - top).astype(jnp.uint32)) & 0x7FFFFF
    sub_exponent = (top - 149 + 1023).astype(jnp.uint32)
    is_sub = (exponent == 0) & (mantissa != 0)
    is_zero = (exponent == 0) & (mantissa == 0)
    is_special = exponent == 0xFF
    exp64 = jnp.where(is_special, jnp.uint32(2047), exponent + jnp.uint32(1023 - 127))
    exp64 = jnp.where(is_sub, sub_exponent, exp64)
    exp64 = jnp.where(is_zero, jnp.uint32(0), exp64)
    man = jnp.where(is_sub, sub_mantissa, mantissa)  # 23 bits, the top of float64's 52
    high = (sign << 31) | (exp64 << 20) | (man >> 3)
    low = (man & 0x7) << 29
    return jnp.stack([low, high], axis=-1).astype(jnp.uint32)


def float64_split(bits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """uint32[..., 2] (float64 encodings, as :func:`float64_bits` writes them) -> (hi, lo) float32[...]
    with hi + lo equal to the float64 value within 2^-47 of it: hi is the value with its mantissa cut to
    float32's 24 bits (exact), lo the remaining 29 bits (rounded to 24).

    Pure JAX without x64, so that differences of nearby positions keep float64's precision:
    ``(hi_a - hi_b) + (lo_a - lo_b)`` (the first difference is exact for values within a factor of 2).
    Zeros and float64 subnormals give (±0, 0); magnitudes beyond float32's range give ±inf.
    """
    low, high = bits[..., 0].astype(jnp.uint32), bits[..., 1].astype(jnp.uint32)
    negative = (high >> 31) == 1
    exponent = ((high >> 20) & 0x7FF).astype(jnp.int32)
    top23 = ((high & 0xFFFFF) << 3) | (low >> 29)
    rest29 = low & 0x1FFFFFFF
    mantissa24 = (top23 | (1 << 23)).astype(jnp.float32)  # 1.m as a 24-bit integer: exact in float32
    hi = jnp.ldexp(mantissa24, exponent - (1023 + 23))
    lo = jnp.ldexp(rest29.astype(jnp.float32), exponent - (1023 + 52))
    is_zero = exponent == 0
    hi = jnp.where(is_zero, 0.0, hi)
    lo = jnp.where(is_zero | jnp.isinf(hi), 0.0, lo)
    return jnp.where(negative, -hi, hi), jnp.where(negative, -lo, lo)


def exact_difference(before: jax.Array, after: jax.Array) -> jax.Array:
    """float32[...]: ``after - before`` of float64 values given as uint32[..., 2] encodings, computed
    in float64's precision (:func:`float64_split`) and rounded once to float32."""
    hi_a, lo_a = float64_split(after)
    hi_b, lo_b = float64_split(before)
    return (hi_a - hi_b) + (lo_a - lo_b)


def _mjx():
    """``mujoco.mjx``, imported without its two "Failed to import warp" lines: mjx prints them when
    the optional NVIDIA Warp backend is absent, which jmeta does not use. Anything else it prints
    on import is passed on."""
    import sys

    if "mujoco.mjx" not in sys.modules:
        import contextlib
        import io

        captured = io.StringIO()
        with contextlib.redirect_stdout(captured):
            from mujoco import mjx  # noqa: F401
        for line in captured.getvalue().splitlines():
            if not line.startswith(("Failed to import warp", "Failed to import mujoco_warp")):
                print(line)
    from mujoco import mjx

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

    def step(self, qpos: jax.Array, qvel: jax.Array, ctrl: jax.Array, exact: jax.Array | None = None) -> PhysicsOut:
        del exact  # float32 throughout: nothing beyond qpos, qvel to carry
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
            exact=jnp.zeros((0, 2), jnp.uint32),
        )


    def reset_contact_forces(self, qpos: jax.Array, qvel: jax.Array) -> jax.Array:
        mjx = _mjx()
        data = mjx.make_data(self.mjx_model).replace(qpos=qpos, qvel=qvel)
        data = mjx.forward(self.mjx_model, data)
        return _mjx_cfrc_ext(mjx.rne_postconstraint(self.mjx_model, data)).astype(jnp.float32)


def _mjx_cfrc_ext(data) -> jax.Array:
    impl = getattr(data, "_impl", None)
    if impl is not None and hasattr(impl, "cfrc_ext"):
        return impl.cfrc_ext
    return data.cfrc_ext


class MujocoPhysics(Physics):
    """MuJoCo's C engine stepping the whole batch from inside jit (one host callback per step).

    The callback flattens every vmapped axis into one batch and, per env, restores the carried
    float64 state (qpos, qvel, the solver's warm start and any actuator state; MuJoCo's
    ``mjSTATE_PHYSICS | mjSTATE_WARMSTART``), steps ``frame_skip`` substeps of ``mj_step`` and
    reads back the new state and what ``mjData`` shows after the step (body poses, and contact
    forces after ``mj_rnePostConstraint`` when the env uses them), on ``nthread`` threads (see
    :class:`_HostEngine`). The warm start is part of the state because MuJoCo's constraint solver
    starts from it: dropping it at env-step boundaries changes results at the last bit, which the
    dynamics amplify to order one within 200 steps.
    """

    name = "mujoco"
    #: The float64 state carried between env steps (layout: qpos, qvel, act, ..., warm start).
    STATE_SPEC = mujoco.mjtState.mjSTATE_PHYSICS | mujoco.mjtState.mjSTATE_WARMSTART

    def __init__(
        self,
        model: mujoco.MjModel,
        frame_skip: int,
        contact_forces: bool,
        nthread: int | None = None,
        fresh_view: bool = False,
        body_poses: bool = True,
        carry_body: int | None = None,
    ):
        super().__init__(model, frame_skip, contact_forces, fresh_view)
        if carry_body is not None and not body_poses:
            raise ConfigError("carry_body needs body_poses")
        self.nthread = nthread or max(1, os.cpu_count() or 1)
        self.nposes = model.nbody if body_poses else 0  # rows of xpos / xmat returned (0: not read)
        self.carry_body = carry_body
        self._state_size = mujoco.mj_stateSize(model, self.STATE_SPEC)
        self._host = _HostEngine(self)

    @property
    def state_size(self) -> int:
        """Rows of the carried MuJoCo state (``mj_stateSize`` of :attr:`STATE_SPEC`), the first rows of ``exact``."""
        return self._state_size

    @property
    def nexact(self) -> int:
        """The MuJoCo state, then (with ``carry_body``) that body's float64 ``xpos`` after the step (3 rows)."""
        return self._state_size + (3 if self.carry_body is not None else 0)

    def exact_body_position(self, exact: jax.Array) -> jax.Array | None:
        if self.carry_body is None or exact.shape[-2] == 0:
            return None
        return exact[..., self._state_size : self._state_size + 3, :]

    def exact_state(self, qpos: jax.Array, qvel: jax.Array) -> jax.Array:
        """The carried state at (qpos, qvel) after a reset: their float64 bits, and zeros for the
        warm start and actuator state (what ``mj_resetData`` leaves); with ``carry_body``, that body's
        position from forward kinematics in float32 (at reset only, near the origin: within 1e-7)."""
        bits = float64_bits(jnp.concatenate([qpos, qvel]).astype(jnp.float32))
        rows = [bits, jnp.zeros((self._state_size - bits.shape[0], 2), jnp.uint32)]
        if self.carry_body is not None:
            rows.append(float64_bits(self.body_poses(qpos.astype(jnp.float32))[0][self.carry_body]))
        return jnp.concatenate(rows)

    def step(self, qpos: jax.Array, qvel: jax.Array, ctrl: jax.Array, exact: jax.Array | None = None) -> PhysicsOut:
        qpos, qvel, ctrl = (jax.lax.stop_gradient(x.astype(jnp.float32)) for x in (qpos, qvel, ctrl))
        if exact is None or exact.shape[-2] == 0:
            exact = self.exact_state(qpos, qvel)
        f32 = jnp.float32
        shapes = (
            jax.ShapeDtypeStruct((self.nq,), f32),
            jax.ShapeDtypeStruct((self.nv,), f32),
            jax.ShapeDtypeStruct((self.nexact, 2), jnp.uint32),
            jax.ShapeDtypeStruct((self.nposes, 3), f32),
            jax.ShapeDtypeStruct((self.nposes, 9), f32),
            jax.ShapeDtypeStruct((self.ncfrc, 6), f32),
        )
        new_qpos, new_qvel, new_exact, xpos, xmat, cfrc = jax.pure_callback(
            self._host.step, shapes, exact, ctrl, vmap_method="broadcast_all"
        )
        return PhysicsOut(qpos=new_qpos, qvel=new_qvel, xpos=xpos, xmat=xmat, cfrc_ext=cfrc, exact=new_exact)

    def reset_contact_forces(self, qpos: jax.Array, qvel: jax.Array) -> jax.Array:
        exact = self.exact_state(jax.lax.stop_gradient(qpos), jax.lax.stop_gradient(qvel))
        shape = jax.ShapeDtypeStruct((self.nbody, 6), jnp.float32)
        return jax.pure_callback(self._host.reset_contact_forces, shape, exact, vmap_method="broadcast_all")


def _batch_module():
    """``mujoco.batch`` (MuJoCo >= 4.0: many simulations of one model stepped on a C++ thread pool),
    or None on older MuJoCo."""
    try:
        from mujoco import batch
    except ImportError:
        return None
    return batch


class _HostEngine:
    """Host side of :class:`MujocoPhysics`.

    Two ways to step the flattened batch, both bit-identical to a loop of ``mj_step`` over one
    ``mjData`` per env (the C path's tests check it):

    * ``mujoco.batch.Batch`` (MuJoCo >= 4.0), one per batch size: the carried state is written into
      its state rows, one call steps every env on MuJoCo's own thread pool and the body poses are
      read from its bound outputs. Used unless the env needs contact forces.
    * a Python thread pool over per-thread ``mjData`` (``mj_setState``, ``mj_step``, then
      ``mj_rnePostConstraint`` for the contact forces, ``mj_getState``): for contact forces, which
      ``Batch`` does not compute after a step, and on older MuJoCo.

    Created lazily per process (thread pools do not survive pickling or fork).
    """

    def __init__(self, physics: MujocoPhysics):
        self.p = physics
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._datas: list[mujoco.MjData] = []
        self._batches: dict[int, tuple] = {}
        self._pid = None
        self.uses_batch = not physics.contact_forces and _batch_module() is not None

    def _ensure(self) -> None:
        if self._pid == os.getpid():
            return
        self._batches = {}
        if not self.uses_batch:
            self._datas = [mujoco.MjData(self.p.model) for _ in range(self.p.nthread)]
            self._pool = ThreadPoolExecutor(self.p.nthread, thread_name_prefix="jmeta-mujoco")
        self._pid = os.getpid()

    def step(self, exact, ctrl):
        """exact uint32[..., nexact, 2], ctrl float32[..., nu] -> (qpos f32, qvel f32, exact' uint32,
        xpos f32[..., nbody, 3], xmat f32[..., nbody, 9], cfrc_ext f32[..., ncfrc, 6])."""
        p = self.p
        # numpy first: the arguments may arrive as jax.Arrays, and a JAX operation inside a callback
        # can deadlock the runtime that waits for it
        exact, ctrl = np.asarray(exact), np.asarray(ctrl)
        batch_shape = ctrl.shape[:-1]
        carried = np.ascontiguousarray(exact.reshape(-1, p.nexact, 2), "<u4").view("<f8")[..., 0]
        state = np.ascontiguousarray(carried[:, : p.state_size])
        controls = ctrl.astype(np.float64).reshape(-1, p.nu)
        with self._lock:
            self._ensure()
            if self.uses_batch:
                out_state, xpos, xmat, cfrc, body = self._step_batch(state, controls)
            else:
                out_state, xpos, xmat, cfrc, body = self._step_threads(state, controls)
        if p.carry_body is not None:
            out_state = np.ascontiguousarray(np.concatenate([out_state, body], axis=1), "<f8")
        return (
            out_state[:, : p.nq].astype(np.float32).reshape(*batch_shape, p.nq),
            out_state[:, p.nq : p.nq + p.nv].astype(np.float32).reshape(*batch_shape, p.nv),
            out_state.view("<u4").reshape(*batch_shape, p.nexact, 2),
            xpos.reshape(*batch_shape, p.nposes, 3),
            xmat.reshape(*batch_shape, p.nposes, 9),
            cfrc.reshape(*batch_shape, p.ncfrc, 6),
        )

    def reset_contact_forces(self, exact):
        """exact uint32[..., nexact, 2] (a reset state) -> cfrc_ext float32[..., nbody, 6] after
        ``mj_forward`` and ``mj_rnePostConstraint`` there (MuJoCo 1.31's forward pass, rllab)."""
        p = self.p
        exact = np.asarray(exact)
        batch_shape = exact.shape[:-2]
        state = np.ascontiguousarray(exact.reshape(-1, p.nexact, 2), "<u4").view("<f8")[..., 0][:, : p.state_size]
        state = np.ascontiguousarray(state)
        out = np.empty((state.shape[0], p.nbody, 6), np.float32)
        with self._lock:
            self._ensure()
            data = self._datas[0] if self._datas else mujoco.MjData(p.model)
            for i in range(state.shape[0]):
                mujoco.mj_setState(p.model, data, state[i], p.STATE_SPEC)
                data.ctrl[:] = 0.0  # a reset's controls (the state spec leaves ctrl as the last step set it)
                mujoco.mj_forward(p.model, data)
                mujoco.mj_rnePostConstraint(p.model, data)
                out[i] = data.cfrc_ext
        return out.reshape(*batch_shape, p.nbody, 6)

    def _batch_for(self, size: int) -> tuple:
        """The cached ``Batch`` of ``size`` simulations, the columns of its state rows that hold the
        carried state, and its bound ctrl / xpos / xmat arrays."""
        if size not in self._batches:
            p = self.p
            sim = _batch_module().Batch(p.model, nsim=size, nthread=p.nthread)
            columns = _state_columns(p.model, int(p.STATE_SPEC), int(mujoco.mjtState.mjSTATE_INTEGRATION))
            poses = (sim.bind("xpos"), sim.bind("xmat")) if p.nposes else None
            self._batches[size] = (sim, columns, sim.bind("ctrl"), poses)
        return self._batches[size]

    def _step_batch(self, state: np.ndarray, controls: np.ndarray):
        p = self.p
        size = state.shape[0]
        sim, columns, ctrl, poses = self._batch_for(size)
        sim.state[:, columns] = state
        ctrl[:] = controls
        fresh = p.fresh_view and poses is not None  # rllab's forward() after the step, only to read poses
        sim.step(nstep=p.frame_skip, stage=int(mujoco.mjtStage.mjSTAGE_POS if fresh else mujoco.mjtStage.mjSTAGE_NONE))
        body = None
        if poses is None:
            xpos, xmat = np.empty((size, 0, 3), np.float32), np.empty((size, 0, 9), np.float32)
        else:
            xpos, xmat = poses[0].astype(np.float32), poses[1].astype(np.float32)
            if p.carry_body is not None:
                body = np.array(poses[0][:, p.carry_body], np.float64)
        return np.ascontiguousarray(sim.state[:, columns], "<f8"), xpos, xmat, np.empty((size, 0, 6), np.float32), body

    def _step_threads(self, state: np.ndarray, controls: np.ndarray):
        p = self.p
        batch = controls.shape[0]
        out_state = np.empty((batch, p.state_size), "<f8")
        out_body = np.empty((batch, 3), np.float64)
        out_xpos = np.empty((batch, p.nposes, 3), np.float32)
        out_xmat = np.empty((batch, p.nposes, 9), np.float32)
        out_cfrc = np.empty((batch, p.ncfrc, 6), np.float32)
        model, spec, substeps = p.model, p.STATE_SPEC, p.frame_skip

        def run(thread: int, lo: int, hi: int) -> None:
            data = self._datas[thread]
            for i in range(lo, hi):
                mujoco.mj_setState(model, data, state[i], spec)
                data.ctrl[:] = controls[i]
                mujoco.mj_step(model, data, substeps)
                if p.fresh_view and (p.nposes or p.contact_forces):  # only what is read needs the view
                    mujoco.mj_forward(model, data)
                if p.contact_forces:
                    mujoco.mj_rnePostConstraint(model, data)
                    out_cfrc[i] = data.cfrc_ext
                if p.nposes:
                    out_xpos[i] = data.xpos
                    out_xmat[i] = data.xmat
                if p.carry_body is not None:
                    out_body[i] = data.xpos[p.carry_body]
                mujoco.mj_getState(model, data, out_state[i], spec)

        chunk = math.ceil(batch / p.nthread)
        jobs = [
            self._pool.submit(run, t, t * chunk, min(batch, (t + 1) * chunk))
            for t in range(p.nthread)
            if t * chunk < batch
        ]
        for job in jobs:
            job.result()
        return out_state, out_xpos, out_xmat, out_cfrc, out_body


def _state_columns(model: mujoco.MjModel, spec: int, within: int) -> np.ndarray:
    """Indices, in a state vector of ``within`` (an mjtState bit set), of the components in ``spec``
    (a subset; MuJoCo orders components by bit)."""
    columns, offset = [], 0
    for bit in range(within.bit_length()):
        flag = 1 << bit
        if not within & flag:
            continue
        size = mujoco.mj_stateSize(model, flag)
        if spec & flag:
            columns.extend(range(offset, offset + size))
        offset += size
    return np.asarray(columns, np.int64)


def make_physics(
    physics: str,
    xml_name: str,
    frame_skip: int,
    contact_forces: bool,
    solver: SolverSettings = SolverSettings(),
    fresh_view: bool = False,
    body_poses: bool = True,
    carry_body: int | None = None,
) -> Physics:
    """Builds the physics path named by ``physics`` ("auto" | "mjx" | "mujoco") for a model.

    ``body_poses=False`` (an env that never reads ``xpos`` / ``xmat``) lets the C path skip them:
    its ``PhysicsOut.xpos`` / ``xmat`` are then float32[0, 3] / [0, 9]. ``carry_body``: a body whose
    float64 position the C path carries in ``exact`` (:meth:`Physics.exact_body_position`), for
    displacements in float64's precision; MJX (float32 throughout) ignores it.
    """
    path = resolve_physics(physics)
    model = load_model(xml_name)
    if path == "mjx":
        return MjxPhysics(model, frame_skip, contact_forces, solver, fresh_view)
    return MujocoPhysics(model, frame_skip, contact_forces, fresh_view=fresh_view, body_poses=body_poses,
                         carry_body=carry_body)


def initial_qpos(model: mujoco.MjModel) -> np.ndarray:
    """The MJCF's ``<numeric name="init_qpos">`` when it defines one (rllab models), else qpos0."""
    init_qpos = _custom_numeric(model, "init_qpos")
    return np.array(model.qpos0) if init_qpos is None else init_qpos

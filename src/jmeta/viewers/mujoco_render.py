"""Headless frames of jmeta's MuJoCo envs (cheetah_*, ant_*, wheeled_nav, ant_goal_ring, block_push).

Rendering happens on the host after a rollout, from the states the rollout produced::

    env, tasks = jmeta.make("ant_goal", physics="mujoco")
    ... states = a stacked env state [T, ...] (e.g. collected with lax.scan over env.step) ...
    qpos = qpos_of(env, states)                                  # float64[T, nq]
    frames = render_frames(env, qpos, markers=goal_markers(env, task))  # uint8[T, 240, 320, 3]
    write_gif(frames, "ant_goal.gif", fps=20)

**State.** Every MuJoCo env keeps a :class:`~jmeta.envs.mujoco.common.MujocoState`. On the
``"mujoco"`` physics path (MuJoCo's C engine in a host callback) its ``exact`` field carries the
float64 MuJoCo state as uint32 pairs [nexact, 2], qpos first (``mjSTATE_PHYSICS``); ``qpos`` is a
float32 view of it. On the ``"mjx"`` path ``exact`` is empty [0, 2] and ``qpos`` (float32) is the
state. :func:`qpos_of` reads whichever is there; the model is ``unwrap(env).physics.model``.

**OpenGL.** MuJoCo renders through OpenGL; on a machine without a display it needs EGL or OSMesa,
picked by the ``MUJOCO_GL`` environment variable. ``import mujoco`` binds the backend named by
``MUJOCO_GL`` at import time (``import jmeta`` imports mujoco), so this module does not depend on
that: :func:`headless_backend` tries ``egl`` and then ``osmesa`` in a subprocess (a failing driver
cannot crash the caller) and the renderer creates that backend's context explicitly. A
``MUJOCO_GL`` the user has set is respected (only that backend is tried); when it is unset, the
working backend is written to ``os.environ`` for child processes. On Debian/Ubuntu, EGL with
Mesa's software rasteriser (llvmpipe) needs ``libegl1 libegl-mesa0 libgl1-mesa-dri libopengl0``
and OSMesa needs ``libosmesa6``; with an NVIDIA driver EGL renders on the GPU.

**Scene.** The packaged MJCFs carry no lights, cameras or textures (physics only), so frames are
rendered from a copy of the model with a checkered floor (motion is visible under a tracking
camera), a directional light and a sky gradient; the bodies, joints and geoms are the env's, so
qpos means the same thing. The static goal markers of ``wheeled.xml`` and ``pusher.xml`` (never
moved per task) are hidden; pass the task's goal as ``markers`` instead (:func:`goal_markers`).
The default camera follows the root body (body 1) from a per-robot distance and angle; block_push
(a wrist on a table) uses a fixed view of the table.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import mujoco
import numpy as np

from jmeta.envs.mujoco.assets import MODELS_DIR, model_path
from jmeta.envs.mujoco.common import TORSO
from jmeta.envs.mujoco.physics import load_model
from jmeta.envs.wrappers import unwrap

__all__ = [
    "EGL_PACKAGES",
    "OSMESA_PACKAGES",
    "MujocoRenderer",
    "goal_markers",
    "headless_backend",
    "model_of",
    "qpos_of",
    "render_frames",
    "write_gif",
    "write_mp4",
]

#: Backends tried, in order, when ``MUJOCO_GL`` is unset.
BACKENDS = ("egl", "osmesa")
#: Debian/Ubuntu packages for each backend (software rendering on CPU).
EGL_PACKAGES = ("libegl1", "libegl-mesa0", "libgl1-mesa-dri", "libopengl0")
OSMESA_PACKAGES = ("libosmesa6",)
_DISABLED = ("disable", "disabled", "off", "false", "0")
_GLFW_ALIASES = ("glfw", "glx", "enable", "enabled", "on", "true", "1")

#: Default marker colours (RGBA), cycled over markers: green, red, blue, yellow.
MARKER_COLORS = ((0.1, 0.85, 0.1, 1.0), (0.95, 0.15, 0.15, 1.0), (0.2, 0.4, 1.0, 1.0), (1.0, 0.8, 0.0, 1.0))


# ----------------------------------------------------------------------------- state and model


def model_of(env: Any) -> mujoco.MjModel:
    """The MjModel of a jmeta MuJoCo env (wrapped or not); an MjModel is returned as is.

    Read-only: it is the model the env steps (cached per process)."""
    if isinstance(env, mujoco.MjModel):
        return env
    physics = getattr(unwrap(env), "physics", None)
    model = getattr(physics, "model", None)
    if not isinstance(model, mujoco.MjModel):
        name = getattr(getattr(env, "spec", None), "name", type(env).__name__)
        raise TypeError(
            f"{name} is not a MuJoCo env (no physics.model); the MuJoCo envs are cheetah_vel, "
            "cheetah_dir, ant_vel, ant_dir, ant_goal, wheeled_nav, ant_goal_ring and block_push"
        )
    return model


def qpos_of(env: Any, env_state: Any) -> np.ndarray:
    """float64[..., nq]: the generalised positions held by an env state (one state, or states
    stacked along leading axes such as [T, ...] or [B, T, ...]), on either physics path.

    The ``"mujoco"`` path's exact float64 state (``state.exact``, uint32 pairs, qpos first) is
    decoded when present, so frames show exactly the simulated configuration; otherwise (MJX,
    whose ``exact`` is empty) the float32 ``state.qpos`` is returned as float64. A plain array
    whose last axis is nq is passed through.
    """
    nq = model_of(env).nq
    if not hasattr(env_state, "qpos"):
        if not (isinstance(env_state, np.ndarray | Sequence) or hasattr(env_state, "__array__")):
            raise TypeError(f"expected a MuJoCo env state with .qpos (MujocoState), got {type(env_state).__name__}")
        qpos = np.asarray(env_state, np.float64)
    else:
        exact = getattr(env_state, "exact", None)
        exact = None if exact is None else np.asarray(exact)
        if exact is not None and exact.ndim >= 2 and exact.shape[-1] == 2 and exact.shape[-2] >= nq:
            bits = np.ascontiguousarray(exact[..., :nq, :], dtype="<u4")
            qpos = bits.view("<f8")[..., 0].astype(np.float64)
        else:
            qpos = np.asarray(env_state.qpos, np.float64)
    if qpos.ndim == 0 or qpos.shape[-1] != nq:
        raise ValueError(f"qpos must have a last axis of nq={nq}, got shape {qpos.shape}")
    return qpos


def goal_markers(env: Any, task: Any) -> np.ndarray | None:
    """float32[..., 1, 2]: the task's goal position (x, y) as one marker per task, for
    ``render_frames(..., markers=...)``; None for tasks without a goal position.

    ant_goal: ``task.target``; wheeled_nav, ant_goal_ring and block_push: ``task.goal`` (for
    block_push, where the task's block must go)."""
    inner = unwrap(env)
    if hasattr(task, "goal"):
        goal = task.goal
    elif getattr(getattr(inner, "params", None), "task", None) == "goal" and hasattr(task, "target"):
        goal = task.target
    else:
        return None
    return np.asarray(goal, np.float32)[..., None, :]


# ----------------------------------------------------------------------------- OpenGL backend


@functools.cache
def _probe(backend: str) -> str | None:
    """None when ``MUJOCO_GL=backend`` renders a frame in a fresh interpreter, else why not."""
    code = (
        "import mujoco\n"
        "m = mujoco.MjModel.from_xml_string(\"<mujoco><worldbody><light pos='0 0 1'/>"
        "<geom type='sphere' size='.1'/></worldbody></mujoco>\")\n"
        "d = mujoco.MjData(m)\n"
        "mujoco.mj_forward(m, d)\n"
        "with mujoco.Renderer(m, 16, 16) as r:\n"
        "    r.update_scene(d)\n"
        "    image = r.render()\n"
        "assert image.shape == (16, 16, 3) and image.any(), 'blank image'\n"
    )
    env = {**os.environ, "MUJOCO_GL": backend}
    try:
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{type(exc).__name__}: {exc}"
    if result.returncode == 0:
        return None
    lines = [line for line in (result.stderr or result.stdout).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"exit status {result.returncode}"


def _requested() -> str:
    return os.environ.get("MUJOCO_GL", "").strip().lower()


def headless_backend() -> str | None:
    """The ``MUJOCO_GL`` backend that renders here ("egl" or "osmesa", or the user's own choice),
    or None when none does.

    When ``MUJOCO_GL`` is set, only that backend is tried (the user's choice is respected). Each
    backend is tried once per process, in a subprocess, so a missing library or a crashing
    driver never takes down the caller."""
    requested = _requested()
    if requested in _DISABLED:
        return None
    for backend in (requested,) if requested else BACKENDS:
        if _probe(backend) is None:
            return backend
    return None


def _no_backend_message() -> str:
    requested = _requested()
    if requested in _DISABLED:
        tried = f"MUJOCO_GL={requested} disables rendering"
    else:
        tried = "; ".join(f"MUJOCO_GL={b}: {_probe(b)}" for b in ((requested,) if requested else BACKENDS))
    hint = (
        f" MUJOCO_GL is set to {requested!r} by you; unset it to let jmeta try {' and '.join(BACKENDS)}."
        if requested else ""
    )
    return (
        f"No OpenGL backend can render MuJoCo frames here ({tried}).{hint} On a machine without a "
        "display install one (Debian/Ubuntu): EGL with Mesa software rendering: "
        f"`apt-get install -y {' '.join(EGL_PACKAGES)}`, or OSMesa: "
        f"`apt-get install -y {' '.join(OSMESA_PACKAGES)}`; plus the Python package PyOpenGL (a "
        "dependency of mujoco). With an NVIDIA driver, EGL renders on the GPU."
    )


def _gl_context(backend: str, width: int, height: int):
    try:
        if backend == "egl":
            from mujoco.egl import GLContext
        elif backend == "osmesa":
            from mujoco.osmesa import GLContext
        elif backend in _GLFW_ALIASES:
            from mujoco.glfw import GLContext
        else:
            raise ValueError(f"unknown MUJOCO_GL backend {backend!r}")
        return GLContext(width, height)
    except Exception as exc:  # an import or driver error: say what to do
        raise RuntimeError(
            f"MUJOCO_GL={backend} renders in a fresh process but its OpenGL context could not be "
            f"created in this one ({type(exc).__name__}: {exc}). PyOpenGL binds one platform per "
            f"process (PYOPENGL_PLATFORM={os.environ.get('PYOPENGL_PLATFORM')!r} here): set "
            f"MUJOCO_GL={backend} before anything imports mujoco or OpenGL."
        ) from exc


# ----------------------------------------------------------------------------- scene


@dataclasses.dataclass(frozen=True)
class _View:
    """Default camera and scene scale of one packaged model."""

    distance: float = 4.0
    azimuth: float = 90.0
    elevation: float = -20.0
    track: bool = True  # follow body 1 (the root); else look at ``lookat``
    lookat: tuple[float, float, float] = (0.0, 0.0, 0.0)
    checker: float = 0.5  # side of a floor square (m)
    marker_radius: float = 0.1


_ANT_VIEW = _View(distance=6.0, elevation=-35.0, marker_radius=0.15)
_VIEWS = {
    "half_cheetah.xml": _View(distance=3.5, elevation=-15.0),
    "ant.xml": _ANT_VIEW,
    "ant_rllab.xml": _ANT_VIEW,
    "ant_low_gear.xml": _ANT_VIEW,
    "wheeled.xml": _View(distance=4.0, elevation=-45.0, marker_radius=0.1),
    "pusher.xml": _View(distance=1.7, elevation=-60.0, track=False, lookat=(0.5, 0.0, -0.325), checker=0.1,
                        marker_radius=0.03),
}
#: Static task markers in the MJCFs (never moved per task): hidden in frames.
_STATIC_MARKER_BODIES = ("goal", "target")
_STATIC_MARKER_SITES = ("goal",)
_HIDDEN_GROUP = 5  # MjvOption shows geom / site groups 0-2 by default


def _xml_name(model: mujoco.MjModel) -> str | None:
    """The packaged MJCF the env's (cached) model was compiled from, or None."""
    for name in sorted(os.listdir(MODELS_DIR)):
        if name.endswith(".xml") and load_model(name) is model:
            return name
    return None


@functools.cache
def _decorated_model(xml_name: str) -> mujoco.MjModel:
    """The packaged model with render-only additions: checkered floor, a light, a sky gradient."""
    view = _VIEWS.get(xml_name, _View())
    spec = mujoco.MjSpec.from_file(model_path(xml_name))
    floors = [g for g in spec.worldbody.geoms if g.type == mujoco.mjtGeom.mjGEOM_PLANE]
    if floors:
        base = np.asarray(floors[0].rgba[:3], np.float64)
        spec.add_texture(name="jmeta_render_grid", type=mujoco.mjtTexture.mjTEXTURE_2D,
                         builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER, width=64, height=64,
                         rgb1=base, rgb2=0.8 * base)
        material = spec.add_material(name="jmeta_render_grid", texuniform=True)
        material.texrepeat = [0.5 / view.checker, 0.5 / view.checker]
        textures = [""] * int(mujoco.mjtTextureRole.mjNTEXROLE)
        textures[int(mujoco.mjtTextureRole.mjTEXROLE_RGB)] = "jmeta_render_grid"
        material.textures = textures
        for floor in floors:
            floor.material = "jmeta_render_grid"
            floor.rgba = [1.0, 1.0, 1.0, 1.0]
    spec.add_texture(name="jmeta_render_sky", type=mujoco.mjtTexture.mjTEXTURE_SKYBOX,
                     builtin=mujoco.mjtBuiltin.mjBUILTIN_GRADIENT, width=32, height=192,
                     rgb1=[0.55, 0.7, 0.85], rgb2=[0.1, 0.12, 0.18])
    spec.worldbody.add_light(name="jmeta_render_light", type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL,
                             pos=[0.0, 0.0, 5.0], dir=[0.3, 0.3, -1.0], diffuse=[0.5, 0.5, 0.5],
                             specular=[0.1, 0.1, 0.1], castshadow=False)
    spec.visual.headlight.diffuse = [0.45, 0.45, 0.45]
    spec.visual.headlight.ambient = [0.35, 0.35, 0.35]
    return spec.compile()


def _render_model(model: mujoco.MjModel) -> tuple[mujoco.MjModel, _View]:
    """A private copy of ``model`` to render with (decorated where it is a packaged model)."""
    name = _xml_name(model)
    view = _VIEWS.get(name, _View()) if name else _View()
    render = None
    if name is not None:
        try:
            decorated = _decorated_model(name)
        except Exception:  # decoration is cosmetic: fall back to the model as it is
            decorated = None
        same = decorated is not None and all(
            getattr(decorated, k) == getattr(model, k) for k in ("nq", "nv", "nbody", "ngeom", "njnt")
        )
        render = copy.copy(decorated) if same else None
    if render is None:
        render = copy.copy(model)
    for body in _STATIC_MARKER_BODIES:
        index = mujoco.mj_name2id(render, mujoco.mjtObj.mjOBJ_BODY, body)
        if index > 0 and render.body_jntnum[index] == 0:
            render.geom_group[render.geom_bodyid == index] = _HIDDEN_GROUP
    for site in _STATIC_MARKER_SITES:
        index = mujoco.mj_name2id(render, mujoco.mjtObj.mjOBJ_SITE, site)
        if index >= 0:
            render.site_group[index] = _HIDDEN_GROUP
    return render, view


def _ground_z(model: mujoco.MjModel) -> float:
    """Height of the first plane attached to the world (the floor or table), else 0."""
    planes = np.flatnonzero((model.geom_type == mujoco.mjtGeom.mjGEOM_PLANE) & (model.geom_bodyid == 0))
    return float(model.geom_pos[planes[0], 2]) if planes.size else 0.0


_CAMERA_KEYS = ("distance", "azimuth", "elevation", "lookat", "track")


def _camera(model: mujoco.MjModel, view: _View, camera: Any) -> mujoco.MjvCamera:
    """An MjvCamera from ``camera`` (see :meth:`MujocoRenderer.render`)."""
    if isinstance(camera, mujoco.MjvCamera):
        return camera
    cam = mujoco.MjvCamera()
    if camera is None and model.ncam:
        tracking = (mujoco.mjtCamLight.mjCAMLIGHT_TRACK, mujoco.mjtCamLight.mjCAMLIGHT_TRACKCOM)
        found = [i for i in range(model.ncam) if model.cam_mode[i] in tracking]
        if found:
            camera = found[0]
    if isinstance(camera, str | int) and not isinstance(camera, bool):
        index = camera if isinstance(camera, int) else mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        if not 0 <= index < model.ncam:
            names = [model.camera(i).name for i in range(model.ncam)]
            raise ValueError(f"no camera {camera!r} in the model (cameras: {names or 'none'}); pass None for the "
                             "default tracking camera or a dict of " + ", ".join(_CAMERA_KEYS))
        cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
        cam.fixedcamid = index
        return cam
    settings = dataclasses.asdict(view)
    if camera is not None:
        if not isinstance(camera, Mapping):
            raise TypeError(f"camera must be None, a camera name or id, a dict or an MjvCamera, got {type(camera).__name__}")
        unknown = sorted(set(camera) - set(_CAMERA_KEYS))
        if unknown:
            raise ValueError(f"unknown camera setting(s) {unknown}; valid: {', '.join(_CAMERA_KEYS)}")
        settings.update(camera)
        if "lookat" in camera and "track" not in camera:
            settings["track"] = False
    track = settings["track"]
    if track is not False and track is not None:
        body = TORSO if track is True else track
        if isinstance(body, str):
            body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, body)
        if not 0 < int(body) < model.nbody:
            raise ValueError(f"camera track={track!r} is not a body of the model")
        cam.type = mujoco.mjtCamera.mjCAMERA_TRACKING
        cam.trackbodyid = int(body)
    else:
        cam.type = mujoco.mjtCamera.mjCAMERA_FREE
        cam.lookat[:] = np.asarray(settings["lookat"], np.float64)
    cam.distance = float(settings["distance"])
    cam.azimuth = float(settings["azimuth"])
    cam.elevation = float(settings["elevation"])
    return cam


def _markers(markers: Any, frames: int, ground_z: float, radius: float) -> np.ndarray:
    """float64[T, K, 3] from [3] / [2] (one marker), [K, 2|3] (fixed) or [T, K, 2|3] (per frame);
    2D positions sit on the ground (their z is the ground plus the radius)."""
    points = np.asarray(markers, np.float64)
    if points.ndim == 1:
        points = points[None]
    if points.ndim == 2:
        points = np.broadcast_to(points, (frames, *points.shape))
    if points.ndim != 3 or points.shape[0] != frames or points.shape[-1] not in (2, 3):
        raise ValueError(f"markers must be [2|3], [K, 2|3] or [T={frames}, K, 2|3], got shape {np.shape(markers)}")
    if points.shape[-1] == 2:
        z = np.full((*points.shape[:2], 1), ground_z + radius)
        points = np.concatenate([points, z], axis=-1)
    return points


def _marker_colors(marker_rgba: Any, count: int) -> np.ndarray:
    if marker_rgba is None:
        return np.asarray([MARKER_COLORS[k % len(MARKER_COLORS)] for k in range(count)], np.float32)
    rgba = np.asarray(marker_rgba, np.float32)
    if rgba.shape[-1] == 3:
        rgba = np.concatenate([rgba, np.ones((*rgba.shape[:-1], 1), np.float32)], axis=-1)
    if rgba.shape[-1] != 4:
        raise ValueError(f"marker_rgba must be [4], [3], [K, 4] or [K, 3], got shape {np.shape(marker_rgba)}")
    return np.broadcast_to(rgba, (count, 4)).astype(np.float32)


_EYE = np.eye(3).reshape(-1)


class MujocoRenderer:
    """An offscreen renderer for one MuJoCo env (or MjModel) at one image size; reuse it for many
    rollouts, and ``close()`` it (or use ``with``) to free the OpenGL context.

    antialias: MuJoCo's 4x multisampling (on llvmpipe, False renders about 3.5x faster).
    Raises RuntimeError (saying which packages to install) when no OpenGL backend works.
    """

    def __init__(self, env: Any, width: int = 320, height: int = 240, antialias: bool = True):
        if width < 1 or height < 1:
            raise ValueError(f"width and height must be >= 1, got {width}x{height}")
        backend = headless_backend()
        if backend is None:
            raise RuntimeError(_no_backend_message())
        if not _requested():  # the user has not chosen one: child processes get the working one
            os.environ.setdefault("MUJOCO_GL", backend)
        self.backend = backend
        self.width, self.height = int(width), int(height)
        self.model, self._view = _render_model(model_of(env))
        self.model.vis.global_.offwidth = self.width  # the offscreen buffer: exactly the frame
        self.model.vis.global_.offheight = self.height
        if not antialias:  # MuJoCo's default 4x multisampling costs ~3.5x on a software rasteriser
            self.model.vis.quality.offsamples = 0
        self._data = mujoco.MjData(self.model)
        self._option = mujoco.MjvOption()
        self._rect = mujoco.MjrRect(0, 0, self.width, self.height)
        self._ground = _ground_z(self.model)
        self._gl = None
        self._context = None
        self._gl = _gl_context(backend, self.width, self.height)
        self._gl.make_current()
        self._context = mujoco.MjrContext(self.model, mujoco.mjtFontScale.mjFONTSCALE_100)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._context)

    def render(self, qpos: np.ndarray, camera: Any = None, markers: Any = None, marker_rgba: Any = None,
               marker_radius: float | None = None) -> np.ndarray:
        """uint8[T, H, W, 3]: one frame per row of ``qpos`` (float[T, nq], or [nq] for one frame).

        camera: None (the model's tracking camera if it has one, else a free camera following
          body 1, the root, from the robot's default distance and angle; a fixed view of the table
          for block_push); a dict overriding any of ``distance``, ``azimuth``, ``elevation``,
          ``lookat`` (a fixed point: stops tracking) and ``track`` (True, a body name or id, or
          False); a model camera name or id; or an ``mujoco.MjvCamera``.
        markers: world positions of small spheres: [2|3], [K, 2|3] (the same in every frame) or
          [T, K, 2|3]; (x, y) positions rest on the floor. marker_rgba: [4] or [K, 4] (default:
          green, red, blue, yellow). marker_radius: metres (default per robot).
        """
        if self._context is None:
            raise RuntimeError("this MujocoRenderer is closed")
        model, data = self.model, self._data
        qpos = np.asarray(qpos, np.float64)
        if qpos.ndim == 1:
            qpos = qpos[None]
        if qpos.ndim != 2 or qpos.shape[1] != model.nq:
            raise ValueError(f"qpos must be [T, nq={model.nq}] (one episode; see qpos_of), got shape {qpos.shape}")
        frames = qpos.shape[0]
        radius = self._view.marker_radius if marker_radius is None else float(marker_radius)
        points = None if markers is None else _markers(markers, frames, self._ground, radius)
        colors = None if points is None else _marker_colors(marker_rgba, points.shape[1])
        cam = _camera(model, self._view, camera)
        scene = mujoco.MjvScene(model, maxgeom=model.ngeom + model.nsite + 64 + (0 if points is None else points.shape[1]))
        out = np.empty((frames, self.height, self.width, 3), np.uint8)
        buffer = np.empty((self.height, self.width, 3), np.uint8)
        size = np.full(3, radius)
        self._gl.make_current()
        for t in range(frames):
            data.qpos[:] = qpos[t]
            mujoco.mj_kinematics(model, data)
            mujoco.mj_comPos(model, data)  # subtree_com: the tracking camera's target
            mujoco.mj_camlight(model, data)
            mujoco.mjv_updateScene(model, data, self._option, None, cam, mujoco.mjtCatBit.mjCAT_ALL, scene)
            if points is not None:
                for k in range(points.shape[1]):
                    if scene.ngeom >= scene.maxgeom:
                        break
                    geom = scene.geoms[scene.ngeom]
                    mujoco.mjv_initGeom(geom, mujoco.mjtGeom.mjGEOM_SPHERE, size, points[t, k], _EYE, colors[k])
                    geom.category = mujoco.mjtCatBit.mjCAT_DECOR
                    scene.ngeom += 1
            mujoco.mjr_render(self._rect, scene, self._context)
            mujoco.mjr_readPixels(buffer, None, self._rect, self._context)
            out[t] = buffer[::-1]  # OpenGL's rows run bottom-up
        return out

    def close(self) -> None:
        if self._context is not None:
            with self._gl.as_current():
                self._context.free()
            self._context = None
        if self._gl is not None:
            self._gl.free()
            self._gl = None

    def __enter__(self) -> MujocoRenderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the GL library may be gone already
            pass


def render_frames(env: Any, qpos: np.ndarray, width: int = 320, height: int = 240, camera: Any = None,
                  markers: Any = None, marker_rgba: Any = None, marker_radius: float | None = None,
                  antialias: bool = True) -> np.ndarray:
    """uint8[T, height, width, 3]: frames of a MuJoCo env at the configurations ``qpos``
    (float[T, nq], e.g. ``qpos_of(env, states)``); see :meth:`MujocoRenderer.render` for
    ``camera`` and the goal ``markers``. Creates and frees an OpenGL context per call (about
    0.1 s); reuse a :class:`MujocoRenderer` for many calls.

    Raises RuntimeError, naming the packages to install, when no headless OpenGL backend works.
    """
    with MujocoRenderer(env, width, height, antialias) as renderer:
        return renderer.render(qpos, camera=camera, markers=markers, marker_rgba=marker_rgba,
                               marker_radius=marker_radius)


# ----------------------------------------------------------------------------- video files


def _frames_array(frames: Any) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or frames.shape[0] < 1:
        raise ValueError(f"frames must be uint8[T >= 1, H, W, 3], got {frames.dtype}{list(frames.shape)}")
    return frames


def write_gif(frames: Any, path: str | os.PathLike, fps: float = 20.0) -> None:
    """Writes uint8[T, H, W, 3] frames as a looping GIF (Pillow; GIF delays are whole
    centiseconds, so the played rate is 100 / round(100 / fps))."""
    from PIL import Image

    frames = _frames_array(frames)
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(os.fspath(path), save_all=True, append_images=images[1:], duration=1000.0 / fps, loop=0)


def write_mp4(frames: Any, path: str | os.PathLike, fps: float = 20.0, quality: int = 7) -> None:
    """Writes uint8[T, H, W, 3] frames as an H.264 MP4 (yuv420p, plays in browsers).

    Needs the optional package imageio-ffmpeg (``pip install imageio-ffmpeg``; its wheel bundles a
    static ffmpeg, about 165 MB installed); without it this raises ImportError and
    :func:`write_gif` still works.
    Odd sizes are padded by one pixel (H.264 4:2:0 needs even sides)."""
    try:
        import imageio_ffmpeg
    except ImportError as exc:
        raise ImportError(
            "write_mp4 needs the optional package imageio-ffmpeg (pip install imageio-ffmpeg); "
            "write_gif needs only Pillow"
        ) from exc
    frames = _frames_array(frames)
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    height, width = frames.shape[1:3]
    writer = imageio_ffmpeg.write_frames(os.fspath(path), (width, height), fps=fps, codec="libx264",
                                         pix_fmt_out="yuv420p", quality=quality, macro_block_size=1)
    writer.send(None)
    try:
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
    finally:
        writer.close()

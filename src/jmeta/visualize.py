"""Rollout viewers: python -m jmeta.visualize --run RUN_DIR [--tasks 3] [--step N] [--out DIR]

Restores a run and draws the meta-test's episodes on a few held-out tasks (the first tasks of the
run's evaluation bank) along the adaptation axis: before and after each inner step (gradient-based
methods) or each episode of the trial (RL²). What is drawn depends on the environment:

* 2D envs (point_nav, grid_nav, maze2d): the path of each episode, one colour per point of the
  adaptation axis, over the env's layout (goal, grid, walls and boxes);
* pixel envs (maze3d, visual_nav): a frame strip (rows: adaptation points) and a GIF of the agent's own
  observations;
* MuJoCo envs: the robot rendered by MuJoCo's renderer (headless, EGL or OSMesa) as a GIF per task,
  before and after adaptation, and the path of the torso (x-y, or x over time for the cheetah);
* other envs (bandit, tabular_mdp): reward per step.

Files go to ``RUN_DIR/viewers`` (or ``--out``) with an ``index.json`` (file, caption, task, kind) that the
run report embeds.
"""

from __future__ import annotations

from jmeta._xla_flags import configure_cpu_flags

configure_cpu_flags()

import dataclasses  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jmeta.errors import ConfigError  # noqa: E402
from jmeta.plots import pyplot, save_axes  # noqa: E402

INDEX_FILE = "index.json"
#: Key of the viewer rollouts (fixed, so that the figures of two runs are comparable).
VIEWER_SEED = 20_261_202


@dataclasses.dataclass(frozen=True)
class VisualizeArgs:
    """Draw a run's meta-test episodes on held-out tasks, before and after adaptation."""

    run: str
    """Run directory (holds config.json and checkpoints/)."""
    tasks: int = 3
    """How many held-out tasks to draw (the first of the run's evaluation bank)."""
    step: int | None = None
    """Checkpoint iteration (default: the latest)."""
    out: str | None = None
    """Output directory (default: RUN_DIR/viewers)."""
    mujoco_frames: bool = True
    """Render MuJoCo envs with MuJoCo's renderer (GIFs); off: only the torso paths."""


@dataclasses.dataclass(frozen=True)
class Figure:
    """One written file: its name (relative to the output directory), a caption, the task index and
    the kind ("paths", "frames", "animation", "rewards")."""

    file: str
    caption: str
    task: int
    kind: str


def record(algo: Any, state: Any, tasks: Any, key: jax.Array | None = None):
    """The algorithm's :class:`~jmeta.algos.base.ViewerRollouts` on ``tasks`` (leading axis N), on
    the host as numpy arrays."""
    key = jax.random.key(VIEWER_SEED) if key is None else key
    return jax.device_get(jax.jit(algo.viewer_rollouts)(state, tasks, key))


def write_viewers(algo: Any, state: Any, bank_tasks: Any, out_dir: str, num_tasks: int = 3,
                  mujoco_frames: bool = True) -> list[Figure]:
    """Records and draws ``num_tasks`` tasks of ``bank_tasks``; writes the files and ``index.json``
    into ``out_dir``. Returns the figures written."""
    available = jax.tree_util.tree_leaves(bank_tasks)[0].shape[0]
    if num_tasks < 1:
        raise ConfigError(f"tasks: must be >= 1, got {num_tasks}")
    num_tasks = min(num_tasks, available)
    tasks = jax.tree_util.tree_map(lambda x: x[:num_tasks], bank_tasks)
    rollouts = record(algo, state, tasks)
    os.makedirs(out_dir, exist_ok=True)
    env = algo.env
    figures: list[Figure] = []
    for i in range(num_tasks):
        task = jax.tree_util.tree_map(lambda x, i=i: np.asarray(x[i]), tasks)
        traj = jax.tree_util.tree_map(lambda x, i=i: np.asarray(x[i]), rollouts.traj)
        figures.extend(draw_task(env, task, traj, rollouts.labels, i, out_dir, mujoco_frames))
    with open(os.path.join(out_dir, INDEX_FILE), "w", encoding="utf-8") as f:
        json.dump({"env": env.spec.env_id, "labels": list(rollouts.labels),
                   "figures": [dataclasses.asdict(fig) for fig in figures]}, f, indent=2)
    return figures


# ---------------------------------------------------------------------------------------- drawing
def draw_task(env: Any, task: Any, traj: Any, labels: tuple[str, ...], index: int, out_dir: str,
              mujoco_frames: bool = True) -> list[Figure]:
    """The figures of one task. ``traj``: leaves [P, T, ...] (P points of the adaptation axis)."""
    from jmeta.envs.wrappers import unwrap
    from jmeta.networks.cnn import image_shape

    base = unwrap(env)
    states = traj.extras["env_state"]
    mask = np.asarray(traj.mask) > 0
    returns = (np.asarray(traj.reward) * mask).sum(-1)
    captions = [f"{label} (return {r:.3g})" for label, r in zip(labels, returns, strict=True)]
    name = f"task{index}"
    if image_shape(env) is not None:
        return _pixel_figures(env, traj, mask, captions, index, name, out_dir)
    if _is_mujoco(base):
        return _mujoco_figures(base, task, states, mask, captions, index, name, out_dir, mujoco_frames)
    position = getattr(states, "position", None)
    if position is not None and np.asarray(position).shape[-1] == 2:
        return [_paths_figure(base, task, np.asarray(position), mask, captions, index, name, out_dir)]
    return [_rewards_figure(traj, mask, captions, index, name, out_dir, env.spec.name)]


def _is_mujoco(env: Any) -> bool:
    return hasattr(env, "physics") or type(env).__module__.startswith("jmeta.envs.mujoco")


def _colors(n: int) -> list:
    plt = pyplot()
    cmap = plt.get_cmap("viridis")
    return [cmap(0.85 * k / max(n - 1, 1)) for k in range(n)]


def _paths_figure(env: Any, task: Any, position: np.ndarray, mask: np.ndarray, captions: list[str], index: int,
                  name: str, out_dir: str) -> Figure:
    """Paths [P, T, 2] over the env's layout."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 6.0))
    _draw_layout(ax, env, task)
    colors = _colors(len(captions))
    jitter = 0.06 if env.spec.name == "grid_nav" else 0.0  # grid paths overlap: shift each a little
    for k, (caption, color) in enumerate(zip(captions, colors, strict=True)):
        valid = int(mask[k].sum())
        xy = position[k, :max(valid, 1)] + jitter * (k - (len(captions) - 1) / 2)
        ax.plot(xy[:, 0], xy[:, 1], "-", color=color, linewidth=1.6, alpha=0.9, label=caption)
        ax.plot(xy[-1, 0], xy[-1, 1], "o", color=color, markersize=5)
    ax.plot(position[0, 0, 0], position[0, 0, 1], "s", color="black", markersize=6, label="start", zorder=5)
    ax.set_aspect("equal")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=2, frameon=False)
    file = f"{name}_paths.png"
    save_axes(plt, fig, ax, "", "", f"{env.spec.name}: held-out task {index}", os.path.join(out_dir, file))
    return Figure(file, f"Task {index}: paths along the adaptation axis (" + "; ".join(captions) + ")", index, "paths")


def _draw_layout(ax: Any, env: Any, task: Any) -> None:
    """Goal, grid, walls and boxes of the 2D envs."""
    from matplotlib.patches import Rectangle

    name = env.spec.name
    goal = getattr(task, "goal", None)
    if name == "grid_nav":
        cells = int(getattr(env.params, "num_cells", 5))
        for x in range(cells):
            for y in range(cells):
                ax.add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor="0.8"))
        ax.add_patch(Rectangle((goal[0] - 0.5, goal[1] - 0.5), 1, 1, color="gold", alpha=0.6, label="goal"))
        ax.set_xlim(-0.6, cells - 0.4)
        ax.set_ylim(-0.6, cells - 0.4)
    elif hasattr(task, "walls") and hasattr(task, "boxes"):
        size = float(env.params.cell_size)
        walls = np.asarray(task.walls)
        for row, col in zip(*np.nonzero(walls), strict=True):
            ax.add_patch(Rectangle((col * size, row * size), size, size, color="0.35"))
        for box, color in zip(np.asarray(task.boxes), ("grey", "tab:blue", "tab:red"), strict=True):
            ax.add_patch(Rectangle(((box[0] + 0.25) * size, (box[1] + 0.25) * size), 0.5 * size, 0.5 * size,
                                   color=color))
        target = np.asarray(task.boxes)[int(goal) + 1]
        ax.plot((target[0] + 0.5) * size, (target[1] + 0.5) * size, "*", color="gold", markersize=14,
                markeredgecolor="black", label="goal box", zorder=5)
        ax.set_xlim(0, walls.shape[1] * size)
        ax.set_ylim(0, walls.shape[0] * size)
    elif goal is not None and np.asarray(goal).shape == (2,):
        ax.plot(goal[0], goal[1], "*", color="gold", markersize=18, markeredgecolor="black", label="goal", zorder=5)
        ax.grid(alpha=0.3)


def _rewards_figure(traj: Any, mask: np.ndarray, captions: list[str], index: int, name: str, out_dir: str,
                    env_name: str) -> Figure:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for k, (caption, color) in enumerate(zip(captions, _colors(len(captions)), strict=True)):
        valid = int(mask[k].sum())
        ax.plot(np.arange(valid), np.cumsum(np.asarray(traj.reward[k, :valid])), "-o", markersize=3, color=color,
                label=caption)
    ax.legend(fontsize=7)
    file = f"{name}_rewards.png"
    save_axes(plt, fig, ax, "step", "cumulative reward", f"{env_name}: held-out task {index}",
              os.path.join(out_dir, file))
    return Figure(file, f"Task {index}: cumulative reward per step (" + "; ".join(captions) + ")", index, "rewards")


def _pixel_figures(env: Any, traj: Any, mask: np.ndarray, captions: list[str], index: int, name: str,
                   out_dir: str) -> list[Figure]:
    """A frame strip (rows: adaptation points, up to 8 frames each) and a GIF of every frame."""
    from PIL import Image

    from jmeta.networks.cnn import image_shape

    shape = image_shape(env)
    size = math.prod(shape)
    obs = np.asarray(traj.obs)
    episodes = []
    for k in range(len(captions)):
        valid = max(int(mask[k].sum()), 1)
        episodes.append(np.round(np.clip(obs[k, :valid, :size], 0, 1) * 255).astype(np.uint8).reshape(-1, *shape))
    columns = 8
    height, width = shape[0], shape[1]
    strip = np.full((len(episodes) * (height + 2), columns * (width + 2), 3), 255, np.uint8)
    for r, frames in enumerate(episodes):
        picks = np.unique(np.linspace(0, len(frames) - 1, min(columns, len(frames))).round().astype(int))
        for c, t in enumerate(picks):
            strip[r * (height + 2):r * (height + 2) + height, c * (width + 2):c * (width + 2) + width] = frames[t]
    strip_file = f"{name}_frames.png"
    Image.fromarray(strip).resize((strip.shape[1] * 2, strip.shape[0] * 2), Image.NEAREST).save(
        os.path.join(out_dir, strip_file))
    gif_file = f"{name}.gif"
    from jmeta.viewers.mujoco_render import write_gif

    every = np.concatenate(episodes)
    write_gif(every.repeat(3, axis=1).repeat(3, axis=2), os.path.join(out_dir, gif_file), fps=6)  # 3x, nearest
    rows = "; ".join(f"row {r + 1}: {c}" for r, c in enumerate(captions))
    return [Figure(strip_file, f"Task {index}: the agent's observations ({rows})", index, "frames"),
            Figure(gif_file, f"Task {index}: every observation, episode after episode", index, "animation")]


def _mujoco_figures(env: Any, task: Any, states: Any, mask: np.ndarray, captions: list[str], index: int,
                    name: str, out_dir: str, frames: bool) -> list[Figure]:
    """The torso's path and, when a headless GL backend works, GIFs of the first and last points."""
    from jmeta.viewers import mujoco_render

    qpos = np.asarray(mujoco_render.qpos_of(env, states))  # [P, T, nq]
    figures = [_torso_figure(env, task, qpos, mask, captions, index, name, out_dir)]
    if not frames:
        return figures
    if mujoco_render.headless_backend() is None:
        print("visualize: no headless OpenGL backend for MuJoCo's renderer (install the EGL or OSMesa "
              "libraries, see docs/visualization.md); drawing the torso paths only", file=sys.stderr)
        return figures
    from PIL import Image

    markers = mujoco_render.goal_markers(env, task)
    points = sorted({0, len(captions) - 1})
    strip_rows = []
    for k in points:
        valid = max(int(mask[k].sum()), 1)
        rendered = mujoco_render.render_frames(env, qpos[k, :valid:2], markers=markers)
        file = f"{name}_point{k}.gif"
        mujoco_render.write_gif(rendered, os.path.join(out_dir, file), fps=15)
        figures.append(Figure(file, f"Task {index}: {captions[k]}", index, "animation"))
        picks = np.unique(np.linspace(0, len(rendered) - 1, min(6, len(rendered))).round().astype(int))
        strip_rows.append(np.concatenate([rendered[t, ::2, ::2] for t in picks], axis=1))
    width = max(row.shape[1] for row in strip_rows)
    strip = np.concatenate([np.pad(row, ((0, 2), (0, width - row.shape[1]), (0, 0)), constant_values=255)
                            for row in strip_rows])
    strip_file = f"{name}_frames.png"
    Image.fromarray(strip).save(os.path.join(out_dir, strip_file))
    rows = "; ".join(f"row {r + 1}: {captions[k]}" for r, k in enumerate(points))
    figures.insert(1, Figure(strip_file, f"Task {index}: frames over the episode ({rows})", index, "frames"))
    return figures


def _torso_figure(env: Any, task: Any, qpos: np.ndarray, mask: np.ndarray, captions: list[str], index: int,
                  name: str, out_dir: str) -> Figure:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    planar = env.spec.name.startswith("cheetah")  # the cheetah's root has x only (slide joint)
    for k, (caption, color) in enumerate(zip(captions, _colors(len(captions)), strict=True)):
        valid = max(int(mask[k].sum()), 1)
        if planar:
            ax.plot(np.arange(valid) * float(getattr(env, "dt", 1.0)), qpos[k, :valid, 0], color=color, label=caption)
        else:
            ax.plot(qpos[k, :valid, 0], qpos[k, :valid, 1], color=color, label=caption)
    from jmeta.viewers import mujoco_render

    markers = mujoco_render.goal_markers(env, task)
    if markers is not None and not planar:
        ax.plot(markers[0][0], markers[0][1], "*", color="gold", markersize=16, markeredgecolor="black", label="goal")
        ax.set_aspect("equal")
    ax.legend(fontsize=7)
    file = f"{name}_torso.png"
    save_axes(plt, fig, ax, "time (s)" if planar else "x", "torso x" if planar else "y",
              f"{env.spec.name}: held-out task {index}", os.path.join(out_dir, file))
    return Figure(file, f"Task {index}: torso {'x over time' if planar else 'path'} (" + "; ".join(captions) + ")",
                  index, "paths")


# ---------------------------------------------------------------------------------------- CLI
def visualize_run(run_dir: str, num_tasks: int = 3, step: int | None = None, out: str | None = None,
                  mujoco_frames: bool = True) -> list[Figure]:
    """Restores ``run_dir`` (its latest or ``step`` checkpoint) and writes its viewers."""
    from jmeta.trainer import build_meta_test, restore_run

    config, dist, algo, state = restore_run(run_dir, step)
    meta_algo, bank = build_meta_test(config, algo, dist)
    return write_viewers(meta_algo, state, bank.tasks, out or os.path.join(run_dir, "viewers"), num_tasks,
                         mujoco_frames)


def main(argv: list[str] | None = None) -> int:
    import tyro

    from jmeta.cli_common import run_cli

    def _run() -> int:
        args = tyro.cli(VisualizeArgs, args=argv, description=__doc__, prog="python -m jmeta.visualize")
        figures = visualize_run(args.run, args.tasks, args.step, args.out, args.mujoco_frames)
        out = args.out or os.path.join(args.run, "viewers")
        print(f"wrote {len(figures)} figure(s) to {out}")
        return 0

    return run_cli(_run)


if __name__ == "__main__":
    sys.exit(main())

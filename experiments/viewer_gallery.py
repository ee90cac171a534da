"""The viewers' images in the env family pages (docs/envs/{toy,mujoco,pixel}.md): every registered env,
one task, two episodes of a uniformly random policy, drawn by jmeta.visualize.draw_task.

    python experiments/viewer_gallery.py [--out docs/envs/img/viewers] [--only point_nav maze3d]

Trained agents' rollouts are in each run's report.html (python -m jmeta.visualize --run DIR); this
gallery shows what the viewer draws for each env. MuJoCo envs render headless with EGL or OSMesa
(docs/visualization.md). Only the PNGs are kept for the docs (the GIFs are large).
"""

from __future__ import annotations

from jmeta._xla_flags import configure_cpu_flags

configure_cpu_flags()

import argparse  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import jmeta  # noqa: E402
from jmeta.rollout import rollout_episodes  # noqa: E402
from jmeta.visualize import draw_task  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
#: A shorter horizon for the MuJoCo envs (the frames of 60 steps show the gait; keeps the files small).
HORIZONS = {"cheetah_vel": 60, "cheetah_dir": 60, "ant_vel": 60, "ant_dir": 60, "ant_goal": 60,
            "wheeled_nav": 80, "ant_goal_ring": 60, "block_push": 60}
VARIANTS = {"maze2d": "small", "maze3d": "small"}


def gallery(name: str, out: str) -> list[str]:
    overrides = {"horizon": HORIZONS[name]} if name in HORIZONS else {}
    env, dist = jmeta.make(name, VARIANTS.get(name, "default"), **overrides)
    task = dist.sample(jax.random.key(3))
    space = env.spec.action_space

    def random_policy(params, obs, key):
        return space.sample(key), jnp.zeros(())

    traj = jax.jit(lambda k: rollout_episodes(env, random_policy, None, task, k, 2, next_obs=False, record_info=True,
                                              record_state=True))(jax.random.key(4))
    with tempfile.TemporaryDirectory() as tmp:
        figures = draw_task(env, jax.device_get(task), jax.device_get(traj),
                            ("random policy, episode 0", "random policy, episode 1"), 0, tmp)
        kept = []
        for figure in figures:
            if figure.file.endswith(".png"):
                target = os.path.join(out, f"{name}_{figure.file.removeprefix('task0_')}")
                shutil.copy(os.path.join(tmp, figure.file), target)
                kept.append(target)
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(HERE, "..", "docs", "envs", "img", "viewers"))
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name in args.only or jmeta.list_envs():
        for path in gallery(name, args.out):
            print(os.path.relpath(path))


if __name__ == "__main__":
    main()

"""Scripted reference policies on the information-seeking envs (maze2d, maze3d, visual_nav).

    python experiments/scripted_references.py [--maze2d-tasks 1024] [--maze3d-tasks 256] [--visual-nav-trials 150]

Every policy runs through the shared rollout engine (``jmeta.rollout``) as a privileged actor
(``jmeta.baselines.maze``, ``jmeta.baselines.visual_nav``). Mazes: one episode per task, tasks
``vmap(dist.sample)`` over ``split(key(0), N)``, policy key 1; per-episode return (mean ± s.e.),
success and failure rates, mean length. visual_nav: trials of an exploration and an execution
episode, colours ``arange(N) % 3``, key 0. Writes ``experiments/results/scripted_references.{json,md}``;
the env cards and the README quote these tables.
"""

from __future__ import annotations

from jmeta._xla_flags import configure_cpu_flags

configure_cpu_flags()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jmeta  # noqa: E402
from jmeta.baselines import maze as mp  # noqa: E402
from jmeta.baselines import visual_nav as vp  # noqa: E402
from jmeta.envs.pixel import visual_nav as vn  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def maze_rows(name: str, variant: str, num: int) -> list[dict]:
    env, dist = jmeta.make(name, variant)
    tasks = jax.jit(jax.vmap(dist.sample))(jax.random.split(jax.random.key(0), num))
    stats = mp.run_episodes(env, mp.all_policies(), tasks, jax.random.key(1))
    rows = []
    for i, policy in enumerate(mp.all_policies()):
        ret = np.asarray(stats.episode_return[i], np.float64)
        rows.append({"env": name, "variant": variant, "policy": policy.name, "num_tasks": num,
                     "return": float(ret.mean()), "return_se": float(ret.std(ddof=1) / np.sqrt(num)),
                     "success": float(np.mean(stats.success[i])), "failure": float(np.mean(stats.failure[i])),
                     "length": float(np.mean(stats.length[i]))})
        print(rows[-1], flush=True)
    return rows


def visual_nav_rows(num: int) -> list[dict]:
    env, _ = jmeta.make("visual_nav")
    tasks = vn.VisualNavTask(color=jnp.arange(num, dtype=jnp.int32) % 3)
    rows = []
    for name, make in vp.POLICIES.items():
        out, _ = vp.run_trials(env, make(), tasks, jax.random.key(0))
        out = {k: np.asarray(v, np.float64) for k, v in out.items()}
        rows.append({"env": "visual_nav", "policy": name, "num_trials": num,
                     "exploration_return": float(out["return"][:, 0].mean()),
                     "execution_return": float(out["return"][:, 1].mean()),
                     "execution_success": float(out["success"][:, 1].mean())})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--maze2d-tasks", type=int, default=1024)
    parser.add_argument("--maze3d-tasks", type=int, default=256)
    parser.add_argument("--visual-nav-trials", type=int, default=150)
    args = parser.parse_args()
    mazes = [row for name, num in (("maze2d", args.maze2d_tasks), ("maze3d", args.maze3d_tasks))
             for variant in ("default", "random_layout", "small") for row in maze_rows(name, variant, num)]
    visual = visual_nav_rows(args.visual_nav_trials)
    lines = ["# Scripted reference policies", "",
             "Mazes: one episode per task; return mean ± s.e. over tasks, success/failure rates, mean length.", "",
             "| env | variant | policy | tasks | return | success | failure | length |", "|---|---|---|---|---|---|---|---|"]
    for r in mazes:
        lines.append(f"| {r['env']} | {r['variant']} | {r['policy']} | {r['num_tasks']} | {r['return']:+.3f} ± "
                     f"{r['return_se']:.3f} | {r['success']:.3f} | {r['failure']:.3f} | {r['length']:.1f} |")
    lines += ["", "visual_nav: trials of an exploration and an execution episode (colours cycled over the trials).", "",
              "| policy | trials | exploration return | execution return | execution success |", "|---|---|---|---|---|"]
    for r in visual:
        lines.append(f"| {r['policy']} | {r['num_trials']} | {r['exploration_return']:+.3f} | "
                     f"{r['execution_return']:+.3f} | {100 * r['execution_success']:.1f} % |")
    lines += ["", f"Command: `python experiments/scripted_references.py --maze2d-tasks {args.maze2d_tasks} "
              f"--maze3d-tasks {args.maze3d_tasks} --visual-nav-trials {args.visual_nav_trials}`"]
    stem = os.path.join(HERE, "results", "scripted_references")
    with open(stem + ".json", "w", encoding="utf-8") as f:
        json.dump({"mazes": mazes, "visual_nav": visual, "versions": {"jmeta": jmeta.__version__, "jax": jax.__version__}},
                  f, indent=2)
    with open(stem + ".md", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Per-episode returns of grid_nav's reference policies on the fixed evaluation bank.

    python experiments/grid_nav_references.py [--num-tasks 40] [--trials-per-task 4]

The same 40 held-out goals (``TaskBank.for_evaluation``) that ``python -m jmeta.train`` and
``python -m jmeta.evaluate`` score runs on, so the rows are directly comparable with a run's
``eval/return_episode{k}``: uniform random, the exact-posterior search (``grid_bayes_search``) and
the oracle that knows the goal. Writes ``experiments/results/grid_nav_references.{json,md}``.
"""

from __future__ import annotations

from jmeta._xla_flags import configure_cpu_flags

configure_cpu_flags()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

import jmeta  # noqa: E402
from jmeta.baselines import toy as rp  # noqa: E402
from jmeta.tasks import evaluation_bank  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-tasks", type=int, default=40)
    parser.add_argument("--trials-per-task", type=int, default=4)
    args = parser.parse_args()
    env, dist = jmeta.make("grid_nav")
    bank = evaluation_bank(dist, args.num_tasks)
    tasks = jax.tree_util.tree_map(lambda x: np.repeat(np.asarray(x), args.trials_per_task, axis=0), bank.tasks)
    rows = {}
    for policy in (rp.uniform(5), rp.grid_bayes_search(), rp.grid_oracle()):
        traj, _ = rp.run_trials(env, policy, tasks, jax.random.key(0))
        per_task = np.asarray(traj.episode_return()).reshape(args.num_tasks, args.trials_per_task, -1).mean(1)
        se = per_task.std(0, ddof=1) / np.sqrt(args.num_tasks)
        rows[policy.name] = {"mean": per_task.mean(0).round(3).tolist(), "stderr": se.round(3).tolist()}
    episodes = len(rows["oracle"]["mean"])
    lines = ["# grid_nav reference policies on the evaluation bank", "",
             f"{args.num_tasks} held-out goals (the trainer's evaluation bank), {args.trials_per_task} trials each; "
             "return per episode of a 4-episode trial, mean ± s.e. over goals.", "",
             "| policy | " + " | ".join(f"episode {k}" for k in range(episodes)) + " |", "|---" * (episodes + 1) + "|"]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{m:.2f} ± {s:.2f}" for m, s in zip(r["mean"], r["stderr"], strict=True)) + " |")
    lines += ["", f"Command: `python experiments/grid_nav_references.py --num-tasks {args.num_tasks} "
              f"--trials-per-task {args.trials_per_task}`"]
    stem = os.path.join(HERE, "results", "grid_nav_references")
    with open(stem + ".json", "w", encoding="utf-8") as f:
        json.dump({"num_tasks": args.num_tasks, "trials_per_task": args.trials_per_task, "policies": rows}, f, indent=2)
    with open(stem + ".md", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

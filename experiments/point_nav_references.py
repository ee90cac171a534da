"""Per-episode returns of point_nav's oracle (it knows the goal) on the evaluation bank of a variant.

    python experiments/point_nav_references.py [--variant sparse] [--num-tasks 40]

The same held-out goals that ``python -m jmeta.train`` and ``python -m jmeta.evaluate`` score runs
on (the variant's fixed held-out goals where it has them, else ``TaskBank.for_evaluation``), so the
row is directly comparable with a run's ``eval/return_episode{k}``. The oracle moves straight at the
goal at full speed (``jmeta.baselines.toy.point_oracle``). Writes
``experiments/results/point_nav_{variant}_references.{json,md}``.
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
    parser.add_argument("--variant", default="sparse")
    parser.add_argument("--num-tasks", type=int, default=40)
    args = parser.parse_args()
    env, dist = jmeta.make("point_nav", args.variant)
    bank = evaluation_bank(dist, args.num_tasks)
    traj, _ = rp.run_trials(env, rp.point_oracle(), bank.tasks, jax.random.key(0))
    per_task = np.asarray(traj.episode_return())
    mean, se = per_task.mean(0), per_task.std(0, ddof=1) / np.sqrt(per_task.shape[0])
    episodes = per_task.shape[1]
    lines = [f"# point_nav ({args.variant}): the oracle on the evaluation bank", "",
             f"{per_task.shape[0]} held-out goals (the trainer's evaluation bank); return per episode of a "
             f"{episodes}-episode trial, mean ± s.e. over goals.", "",
             "| policy | " + " | ".join(f"episode {k}" for k in range(episodes)) + " |", "|---" * (episodes + 1) + "|",
             "| oracle (straight at the goal) | " + " | ".join(f"{m:.2f} ± {s:.2f}" for m, s in zip(mean, se, strict=True))
             + " |", "", f"Command: `python experiments/point_nav_references.py --variant {args.variant} "
             f"--num-tasks {args.num_tasks}`"]
    stem = os.path.join(HERE, "results", f"point_nav_{args.variant}_references")
    with open(stem + ".json", "w", encoding="utf-8") as f:
        json.dump({"variant": args.variant, "num_tasks": int(per_task.shape[0]),
                   "oracle": {"mean": mean.round(3).tolist(), "stderr": se.round(3).tolist()}}, f, indent=2)
    with open(stem + ".md", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

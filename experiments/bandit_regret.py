"""Expected regret of a trained RL² bandit run against classic bandit algorithms.

    python experiments/bandit_regret.py --run runs/experiments/rl2_bandit__seed0__... [--num-tasks 1000]

Restores the run's latest checkpoint, plays one trial on each of ``--num-tasks`` held-out bandits
(drawn from the fixed evaluation key) and reports the expected regret ``sum_t max(p) - p[a_t]``
(mean ± s.e. over bandits) of RL² and, on the same bandits, of uniform random, greedy (each arm
once, then the best empirical mean), Thompson sampling (Beta(1, 1)) and UCB1. Writes
``experiments/results/rl2_bandit_{variant}_regret.{json,md}``.
"""

from __future__ import annotations

from jmeta._xla_flags import configure_cpu_flags

configure_cpu_flags()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jmeta.baselines import toy as rp  # noqa: E402
from jmeta.tasks import TaskBank  # noqa: E402
from jmeta.trainer import restore_run  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True)
    parser.add_argument("--num-tasks", type=int, default=1000)
    args = parser.parse_args()

    config, dist, algo, state = restore_run(args.run)
    if config.algo != "rl2" or config.env != "bandit":
        raise SystemExit(f"error: {args.run} is a {config.algo} run on {config.env}; this script scores rl2 on bandit")
    tasks = TaskBank.for_evaluation(dist, args.num_tasks).tasks
    num_arms = algo.env.spec.action_space.n
    key = jax.random.key(0)
    traj = jax.jit(lambda p: algo.collect(p, tasks, key, 1, algo.episodes_per_trial))(state.params)
    regrets = {"rl2": np.asarray(jax.vmap(rp.bandit_trial_regret)(tasks, traj.action[:, 0]))}
    for policy in (rp.uniform(num_arms), rp.bandit_greedy(num_arms), rp.bandit_thompson(num_arms), rp.bandit_ucb1(num_arms)):
        ref, _ = rp.run_trials(algo.env, policy, tasks, key)
        regrets[policy.name] = np.asarray(jax.vmap(rp.bandit_trial_regret)(tasks, ref.action))
    n = args.num_tasks
    rows = {name: (float(r.mean()), float(r.std(ddof=1) / np.sqrt(n))) for name, r in regrets.items()}
    variant = config.env_variant
    lines = [f"# RL² on bandit ({variant}): expected regret per trial", "",
             f"{num_arms} arms, {algo.episodes_per_trial} pulls per trial, {n} held-out bandits; run "
             f"`{args.run}` at iteration {int(state.iteration)}.", "", "| policy | expected regret (mean ± s.e.) |", "|---|---|"]
    lines += [f"| {name} | {m:.3f} ± {s:.3f} |" for name, (m, s) in rows.items()]
    lines += ["", f"Command: `python experiments/bandit_regret.py --run {args.run} --num-tasks {n}`"]
    stem = os.path.join(HERE, "results", f"rl2_bandit_{variant}_regret")
    os.makedirs(os.path.dirname(stem), exist_ok=True)
    with open(stem + ".json", "w", encoding="utf-8") as f:
        json.dump({"run": args.run, "iteration": int(state.iteration), "num_tasks": n, "variant": variant,
                   "regret": {k: {"mean": m, "se": s} for k, (m, s) in rows.items()}}, f, indent=2)
    with open(stem + ".md", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

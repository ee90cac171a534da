"""VariBAD's belief on grid_nav, drawn: the decoded goal probabilities over the grid at several steps
of one trial on a held-out goal.

    python experiments/varibad_belief.py --run runs/<a varibad grid_nav run> [--goal-index 0] [--seed 0]

Loads the run's latest checkpoint, rolls out one trial on a goal of the evaluation bank (the
trainer's held-out goals), re-encodes it and, at each chosen step ``t``, decodes the belief
``q(m | tau_{:t})``: the multi-head reward decoder gives, for every cell, the probability that
stepping there pays the goal reward, averaged over 64 samples of the latent. Each panel shows those
probabilities (normalised over the cells to sum to 1), the path walked so far and the true goal.
Writes ``experiments/results/varibad_grid_nav_belief.{png,json}``.
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

from jmeta.tasks import evaluation_bank  # noqa: E402
from jmeta.trainer import restore_run  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
NUM_SAMPLES = 64


def belief_maps(algo, state, task, key) -> dict[str, np.ndarray]:
    """One trial of ``task``: the positions [L] (after each step), rewards [L] and the decoded goal
    probabilities of every belief, [L + 1, num_cells, num_cells] (belief t: after t steps)."""
    tasks = jax.tree_util.tree_map(lambda x: x[None], task)
    rollout_key, sample_key = jax.random.split(key)
    traj = algo.collect(state.params, state.norm, tasks, rollout_key, 1, algo.episodes_per_trial)
    trial = jax.tree_util.tree_map(lambda x: x[0], algo.vae_trials(traj, tasks))
    means, logvars, _ = algo.trial_beliefs(state.params["encoder"], trial)
    eps = jax.random.normal(sample_key, (NUM_SAMPLES, *means.shape))
    z = means + jnp.exp(0.5 * logvars) * eps  # [S, L + 1, Z]
    decoder = algo.reward_decoder
    logits = decoder._net.apply({"params": state.params["reward_decoder"]}, z, None, None, None)  # [S, L + 1, cells]
    probs = jax.nn.sigmoid(logits).mean(axis=0)
    probs = probs / probs.sum(axis=-1, keepdims=True)
    n = algo.env.params.num_cells
    return {"next_obs": trial.next_obs, "reward": trial.reward, "belief": probs.reshape(-1, n, n)}


def plot(maps: dict[str, np.ndarray], goal: np.ndarray, steps: list[int], horizon: int, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(steps), figsize=(2.6 * len(steps), 3.0))
    for ax, t in zip(axes, steps, strict=True):
        belief = maps["belief"][t]  # [x, y]
        ax.imshow(belief.T, origin="lower", cmap="viridis", vmin=0.0, vmax=max(belief.max(), 1e-6))
        if t > 0:  # the cells visited in the current episode so far
            episode_start = ((t - 1) // horizon) * horizon
            visited = maps["next_obs"][episode_start:t]
            ax.plot(visited[:, 0], visited[:, 1], "w.-", lw=1, ms=4)
        ax.plot(goal[0], goal[1], "r*", ms=12)
        episode = (t - 1) // horizon if t > 0 else 0
        ax.set_title("prior" if t == 0 else f"after {t} steps (episode {episode})", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("VariBAD belief on grid_nav: decoded goal probability per cell (red star: the goal)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a varibad run directory on grid_nav")
    parser.add_argument("--goal-index", type=int, default=0, help="which goal of the evaluation bank")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 3, 8, 15, 16, 30, 60])
    parser.add_argument("--out", default=os.path.join(HERE, "results", "varibad_grid_nav_belief"))
    args = parser.parse_args()
    config, _, algo, state = restore_run(args.run)[:4]
    if config.algo != "varibad" or config.env != "grid_nav" or not algo.config.reward_multi_head:
        raise SystemExit(f"{args.run} is not a varibad grid_nav run with a multi-head reward decoder")
    bank = evaluation_bank(algo.task_dist, max(config.eval_tasks, args.goal_index + 1))
    task = jax.tree_util.tree_map(lambda x: x[args.goal_index], bank.tasks)
    maps = jax.jit(lambda s, t, k: belief_maps(algo, s, t, k))(state, task, jax.random.key(args.seed))
    maps = {k: np.asarray(v) for k, v in maps.items()}
    goal = np.asarray(task.goal)
    steps = [t for t in args.steps if t <= algo.trial_length]
    plot(maps, goal, steps, algo.env.spec.horizon, args.out + ".png")
    episode_returns = maps["reward"].reshape(algo.episodes_per_trial, -1).sum(axis=1)
    record = {"run": args.run, "iteration": int(state.iteration), "goal": goal.tolist(), "steps": steps,
              "belief_at_goal": [float(maps["belief"][t][goal[0], goal[1]]) for t in steps],
              "episode_returns": episode_returns.round(3).tolist(),
              "command": f"python experiments/varibad_belief.py --run {args.run} --goal-index {args.goal_index} "
                         f"--seed {args.seed}"}
    with open(args.out + ".json", "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()

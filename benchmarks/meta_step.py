"""Benchmark: compile time, meta-iterations/s and env steps/s of one compiled meta-iteration.

    python benchmarks/meta_step.py --meta-batch-sizes 10 20 40 --out benchmarks/results/meta_step_cpu.json
    python benchmarks/meta_step.py --algo rl2 --env grid_nav --meta-batch-sizes 16 64 256 \
        --out benchmarks/results/meta_step_rl2_grid_nav_cpu.json

``collect_*`` time the sampling phase alone (MAML: rollouts, baselines, inner steps; RL²: the
trial rollouts with the GRU policy); the rest of an iteration is the update (MAML: TRPO/PPO outer
step; RL²: value replay, GAE and the PPO epochs with backpropagation through the trials). Each configuration jits one whole meta-iteration (rollouts, adaptation, TRPO/PPO outer update),
measures its compile time (AOT ``lower().compile()``), then times ``--iters`` compiled calls after
one warm-up call. Env steps per iteration count every sampled step (inner and post-adaptation).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from jmeta._xla_flags import configure_cpu_flags  # noqa: E402

configure_cpu_flags()

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
from _common import write_result  # noqa: E402

from jmeta.config import MAMLConfig, RL2Config, TrainConfig  # noqa: E402
from jmeta.trainer import build  # noqa: E402


def bench_one(meta_batch_size: int, algo_config: MAMLConfig | RL2Config, iters: int, env: str, algo_name: str,
              env_variant: str = "default") -> dict:
    config = TrainConfig(algo=algo_name, env=env, env_variant=env_variant, meta_batch_size=meta_batch_size,
                         **{algo_name: algo_config})
    config.validate()
    _, _, algo = build(config)
    state = algo.init(jax.random.key(0))
    step = jax.jit(algo.meta_step)
    t0 = time.perf_counter()
    compiled = step.lower(state, jax.random.key(1)).compile()
    compile_s = time.perf_counter() - t0
    state, metrics = compiled(state, jax.random.key(1))  # warm-up
    jax.block_until_ready(metrics)
    t0 = time.perf_counter()
    for i in range(iters):
        state, metrics = compiled(state, jax.random.key(2 + i))
    jax.block_until_ready((state, metrics))
    elapsed = time.perf_counter() - t0
    steps = algo.env_steps_per_iteration()
    collect_s = time_collection(algo, state, iters)
    return {
        "meta_batch_size": meta_batch_size,
        "env_steps_per_iteration": steps,
        "compile_s": round(compile_s, 3),
        "seconds_per_iteration": round(elapsed / iters, 4),
        "meta_iters_per_s": round(iters / elapsed, 4),
        "env_steps_per_s": round(steps * iters / elapsed, 1),
        "collect_seconds_per_iteration": round(collect_s, 4),
        "collect_fraction": round(collect_s / (elapsed / iters), 3),
    }


def time_collection(algo, state, iters: int) -> float:
    """Seconds per iteration of the sampling phase alone (rollouts + inner steps + baselines)."""
    c = algo.config

    def collect_trials(key):
        tasks = jax.vmap(algo.task_dist.sample)(jax.random.split(key, algo.meta_batch_size))
        return algo.collect(state.params, tasks, jax.random.fold_in(key, 1), c.trials_per_task, algo.episodes_per_trial)

    def collect(key):
        tasks = jax.vmap(algo.task_dist.sample)(jax.random.split(key, algo.meta_batch_size))
        keys = jax.random.split(jax.random.fold_in(key, 1), algo.meta_batch_size)
        return jax.vmap(lambda t, k: algo._collect_task(state.params, state.inner_lr, t, k, c.num_inner_steps,
                                                        c.episodes_per_task))(tasks, keys)

    collect = jax.jit(collect_trials if algo.name == "rl2" else collect)
    jax.block_until_ready(collect(jax.random.key(0)))
    t0 = time.perf_counter()
    for i in range(iters):
        out = collect(jax.random.key(1 + i))
    jax.block_until_ready(out)
    return (time.perf_counter() - t0) / iters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=["maml", "rl2"], default="maml")
    parser.add_argument("--env", default="point_nav")
    parser.add_argument("--env-variant", default="default")
    parser.add_argument("--meta-batch-sizes", type=int, nargs="+", default=[10, 20, 40])
    parser.add_argument("--hidden-size", type=int, default=128, help="RL²: GRU width")
    parser.add_argument("--episodes-per-task", type=int, default=20)
    parser.add_argument("--num-inner-steps", type=int, default=1)
    parser.add_argument("--outer", choices=["trpo", "ppo"], default="trpo")
    parser.add_argument("--first-order", action="store_true")
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--out", default=None, help="JSON output path")
    args = parser.parse_args()
    if args.algo == "maml":
        algo_config = MAMLConfig(episodes_per_task=args.episodes_per_task, num_inner_steps=args.num_inner_steps,
                                 outer=args.outer, first_order=args.first_order)
    else:
        algo_config = RL2Config(hidden_size=args.hidden_size)
    results = []

    def save(quiet: bool = True) -> None:  # after every size: a run cut short keeps what it measured
        write_result(args.out, {"benchmark": "meta_step", "env": args.env, "env_variant": args.env_variant,
                                "algo": args.algo, "config": dataclasses.asdict(algo_config),
                                "timed_iters": args.iters, "results": results}, quiet=quiet)

    for n in args.meta_batch_sizes:
        results.append(bench_one(n, algo_config, args.iters, args.env, args.algo, args.env_variant))
        print(results[-1], file=sys.stderr, flush=True)
        save()
    save(quiet=False)


if __name__ == "__main__":
    main()

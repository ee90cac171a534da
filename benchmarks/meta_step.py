"""Benchmark: compile time, meta-iterations/s and env steps/s of one compiled meta-iteration.

    python benchmarks/meta_step.py --algo maml --env point_nav --meta-batch-sizes 10 20 40 \
        --set episodes_per_task=20 --out benchmarks/results/meta_step_cpu.json
    python benchmarks/meta_step.py --algo rl2 --env grid_nav --meta-batch-sizes 16 64 256 \
        --set hidden_size=128 --out benchmarks/results/meta_step_rl2_grid_nav_cpu.json
    python benchmarks/meta_step.py --algo pearl --env cheetah_vel --env-variant pearl --preset --split \
        --meta-batch-sizes 4 16 64 --out benchmarks/results/meta_step_pearl_cheetah_vel_cpu.json

Any registered algorithm: its config starts from its defaults (or the (algo, env) preset with
``--preset``) and ``--set FIELD=VALUE`` overrides fields of the algorithm's Config. Each
configuration jits one whole meta-iteration (task sampling, rollouts, adaptation, update),
measures its compile time (AOT ``lower().compile()``), then times ``--iters`` compiled calls after
one warm-up call. Env steps per iteration count every sampled step.
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
import typing  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from _common import write_result  # noqa: E402

from jmeta.algos import algorithm_class, list_algorithms  # noqa: E402
from jmeta.config import TrainConfig, preset_config  # noqa: E402
from jmeta.trainer import build  # noqa: E402


def bench_one(config: TrainConfig, iters: int) -> dict:
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
    return {
        "meta_batch_size": config.meta_batch_size,
        "env_steps_per_iteration": steps,
        "compile_s": round(compile_s, 3),
        "seconds_per_iteration": round(elapsed / iters, 4),
        "meta_iters_per_s": round(iters / elapsed, 4),
        "env_steps_per_s": round(steps * iters / elapsed, 1),
    }


def _timed(fn, *args, iters: int) -> float:
    """Mean seconds of ``iters`` calls of ``jax.jit(fn)`` after compiling and one warm-up call."""
    compiled = jax.jit(fn).lower(*args).compile()
    jax.block_until_ready(compiled(*args))
    t0 = time.perf_counter()
    for _ in range(iters):
        out = compiled(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - t0) / iters


def time_split(config: TrainConfig, iters: int) -> dict:
    """Where one meta-iteration of a gradient-based TRPO learner spends its time (seconds), each part
    compiled and timed on its own on the same sampled data:

    * ``sampling_and_inner``: task sampling, every rollout and the inner steps (``collect_meta_batch``);
    * ``inner_steps``: re-applying the inner steps to the stored batches for all tasks (``adapt``);
    * ``meta_gradient``: the outer loss and its gradient through the adaptation;
    * ``fvp_setup``: linearising the post-adaptation policy map for the Fisher-vector products;
    * ``conjugate_gradient``: setup plus ``cg_iters`` Fisher-vector products (the CG solve);
    * ``fvp_each``: (``conjugate_gradient`` - ``fvp_setup``) / ``cg_iters``;
    * ``line_search_candidate``: one candidate's loss and KL (the adaptation recomputed at it);
    * ``outer_update``: the whole TRPO step; ``line_search`` = outer_update - meta_gradient -
      conjugate_gradient (the candidates the line search tried, plus bookkeeping).
    """
    from jax.flatten_util import ravel_pytree

    from jmeta.rl.trpo import conjugate_gradient, gauss_newton_fvp

    config.validate()
    _, _, algo = build(config)
    state = algo.init(jax.random.key(0))
    key = jax.random.key(1)
    outer_batches, batches, post, _ = jax.jit(algo.collect_meta_batch)(state, key)
    meta = algo.meta_params(state)
    params, inner_lr = algo.unpack(meta, state)
    loss = lambda m: algo.outer_loss(*algo.unpack(m, state), outer_batches, post)  # noqa: E731
    dists = lambda m: algo.post_dists(*algo.unpack(m, state), outer_batches, post)  # noqa: E731
    flat, _ = ravel_pytree(meta)
    direction = jnp.full_like(flat, 1e-3)
    old = jax.lax.stop_gradient(dists(meta))

    def setup_only(m, v):
        return gauss_newton_fvp(dists, m, post.traj.mask)(v * 0.0)  # one product on a zero vector

    def solve(m, v):
        return conjugate_gradient(gauss_newton_fvp(dists, m, post.traj.mask), v, algo.config.cg_iters)[0]

    def candidate(m):
        p, lr = algo.unpack(m, state)
        return loss(m), algo.post_kl(p, old, lr, outer_batches, post)

    split = {
        "sampling_and_inner": _timed(algo.collect_meta_batch, state, key, iters=iters),
        "inner_steps": _timed(jax.vmap(algo.adapt, in_axes=(None, None, 0)), params, inner_lr, batches,
                              iters=iters),
        "meta_gradient": _timed(jax.value_and_grad(loss), meta, iters=iters),
        "fvp_setup": _timed(setup_only, meta, direction, iters=iters),
        "conjugate_gradient": _timed(solve, meta, direction, iters=iters),
        "line_search_candidate": _timed(candidate, meta, iters=iters),
        "outer_update": _timed(algo.outer_update, state, outer_batches, post, iters=iters),
        "meta_step": _timed(algo.meta_step, state, key, iters=iters),
    }
    split["fvp_each"] = (split["conjugate_gradient"] - split["fvp_setup"]) / algo.config.cg_iters
    split["line_search"] = split["outer_update"] - split["meta_gradient"] - split["conjugate_gradient"]
    return {"meta_batch_size": config.meta_batch_size, "split_s": {k: round(v, 4) for k, v in split.items()}}


def time_split_off_policy(config: TrainConfig, iters: int, num_steps: int = 50) -> dict:
    """Where one iteration of an off-policy learner with ``collect`` and ``train_steps`` (PEARL) spends
    its time: ``collect_s`` (the iteration's data collection, every env step) and ``update_s`` (one
    gradient step, from a scan of ``num_steps``); ``gradient_steps_per_s`` and
    ``collect_env_steps_per_s`` follow."""
    config.validate()
    _, _, algo = build(config)
    state = algo.init(jax.random.key(0))
    key = jax.random.key(1)
    collect_s = _timed(algo.collect, state, key, iters=iters)
    scan_s = _timed(lambda s, k: algo.train_steps(s, k, num_steps), state, key, iters=iters)
    update_s = scan_s / num_steps
    return {"split_s": {"collect": round(collect_s, 4), "update": round(update_s, 6)},
            "gradient_steps_per_s": round(1.0 / update_s, 1),
            "collect_env_steps_per_s": round(algo.env_steps_per_iteration() / collect_s, 1)}


def parse_overrides(config_cls: type, items: list[str]) -> dict:
    """``["field=value", ...]`` -> typed overrides of ``config_cls``'s fields."""
    hints = typing.get_type_hints(config_cls)
    out = {}
    for item in items:
        name, _, raw = item.partition("=")
        if name not in hints:
            raise SystemExit(f"--set: {config_cls.__name__} has no field {name!r}; fields: {sorted(hints)}")
        default = getattr(config_cls(), name)
        if isinstance(default, bool):
            out[name] = raw.lower() in ("1", "true", "yes")
        elif isinstance(default, tuple):
            out[name] = tuple(int(x) for x in raw.split(",") if x)
        elif default is None:
            out[name] = int(raw) if raw.lstrip("-").isdigit() else raw
        else:
            out[name] = type(default)(raw)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=list_algorithms(), default="maml")
    parser.add_argument("--env", default="point_nav")
    parser.add_argument("--env-variant", default=None, help="default: the preset's variant (with --preset), else 'default'")
    parser.add_argument("--meta-batch-sizes", type=int, nargs="+", default=[10, 20, 40])
    parser.add_argument("--preset", action="store_true", help="start from the (algo, env) preset")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="algorithm config overrides")
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--split", action="store_true",
                        help="also time the parts of a TRPO meta-iteration (sampling, inner steps, meta-gradient, "
                             "Fisher-vector products, line search) for gradient-based learners, or collection and "
                             "gradient steps for off-policy ones (PEARL)")
    parser.add_argument("--out", default=None, help="JSON output path")
    args = parser.parse_args()
    cls = algorithm_class(args.algo)
    base = (preset_config(args.algo, args.env, args.env_variant) if args.preset
            else TrainConfig(algo=args.algo, env=args.env, env_variant=args.env_variant or "default"))
    algo_config = dataclasses.replace(base.algo_config, **parse_overrides(cls.Config, args.set))
    results = []

    def save(quiet: bool = True) -> None:  # after every size: a run cut short keeps what it measured
        write_result(args.out, {"benchmark": "meta_step", "env": args.env, "env_variant": base.env_variant,
                                "algo": args.algo, "config": dataclasses.asdict(algo_config),
                                "timed_iters": args.iters, "results": results}, quiet=quiet)

    for n in args.meta_batch_sizes:
        config = dataclasses.replace(base, meta_batch_size=n, algo_config=algo_config)
        results.append(bench_one(config, args.iters))
        if args.split:
            off_policy = hasattr(cls, "train_steps")
            results[-1].update((time_split_off_policy if off_policy else time_split)(config, args.iters))
        print(results[-1], file=sys.stderr, flush=True)
        save()
    save(quiet=False)


if __name__ == "__main__":
    main()

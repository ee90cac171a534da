"""How far one inner step moves a gradient-based learner's policy, at its initialisation or at a saved
checkpoint: the diagnostic behind the ProMP and CAVIA notes of the cheetah results.

    python experiments/inner_step_size.py --env cheetah_dir --algos maml cavia \\
        'cavia50=cavia --cavia.num-context-params 50' --out experiments/results/inner_step_size_cheetah_dir.json

For each entry (an algorithm with its preset for ``--env``, or ``LABEL=ALGO --ALGO.FIELD VALUE ...``
with fields of its config overridden), one meta-batch of ``--tasks`` tasks is collected with the
preset's episodes per task from the initial parameters (seed ``--seed``) and the inner step is
applied per task. Reported per entry, as means over tasks and the pre-update batch's time steps:

* ``inner_kl``: KL(pi_theta || pi_theta') between the pre- and post-update policies;
* ``mean_shift``: mean |mu_theta' - mu_theta| of the action means, in the agent's action units;
* ``return_pre`` / ``return_post``: the batch's returns before and after the step.

``--std-scale s`` multiplies the policy's standard deviation by ``s`` before measuring (the log-std
parameter shifted by log s), which shows how the step grows as the policy's noise shrinks during
training. Output: a table on stdout and, with ``--out``, JSON with the host and the exact command.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from jmeta.config import TrainConfig
from jmeta.rl.surrogates import masked_mean
from jmeta.trainer import build


def parse_entry(entry: str) -> tuple[str, str, dict]:
    """``ALGO`` or ``LABEL=ALGO --ALGO.FIELD VALUE ...`` -> (label, algo, overrides of its config)."""
    label, sep, rest = entry.partition("=")
    if not sep:
        return entry, entry, {}
    algo, *tokens = rest.split()
    if len(tokens) % 2:
        raise SystemExit(f"inner_step_size: {entry!r}: flags must come as '--{algo}.field value' pairs")
    overrides = {}
    for flag, value in zip(tokens[::2], tokens[1::2], strict=True):
        prefix = f"--{algo}."
        if not flag.startswith(prefix):
            raise SystemExit(f"inner_step_size: {entry!r}: {flag!r} is not a --{algo}.FIELD flag")
        overrides[flag[len(prefix):].replace("-", "_")] = json.loads(value) if value[:1].isdigit() else value
    return label, algo, overrides


def measure(algo_name: str, env: str, overrides: dict, tasks: int, seed: int, std_scales: list[float]) -> list[dict]:
    """One meta-batch at the initial parameters per policy-noise scale; the inner step's size (module
    docstring). One compiled program serves every scale (only parameter values change)."""
    config = TrainConfig.from_preset(algo_name, env, meta_batch_size=tasks, algo_overrides=overrides)
    config.validate()
    _, _, algo = build(config)
    initial = algo.init(jax.random.key(seed))

    @jax.jit
    def run(state, key):
        _, batches, _, returns = algo.collect_meta_batch(state, key)

        def per_task(batch):
            adapted = algo.adapt(state.params, state.inner_lr, batch)
            obs, mask = batch.traj.obs[0], batch.traj.mask[0]
            before = algo.policy.dist(algo.adaptation_start(state.params), obs)
            after = algo.policy.dist(adapted, obs)
            return masked_mean(before.kl(after), mask), masked_mean(jnp.abs(after.mean - before.mean).mean(-1), mask)

        kl, shift = jax.vmap(per_task)(batches)
        return kl.mean(), shift.mean(), returns.mean(0)

    c = algo.config
    rows = []
    for scale in std_scales:
        t0 = time.time()
        params = {**initial.params, "log_std": initial.params["log_std"] + math.log(scale)}
        kl, shift, returns = run(initial.replace(params=params), jax.random.key(seed + 1))
        rows.append({"algo": algo_name, "overrides": overrides, "inner_lr": float(c.inner_lr),
                     "num_context_params": getattr(c, "num_context_params", None),
                     "hidden_sizes": list(c.hidden_sizes), "activation": c.activation,
                     "action_scale": config.action_scale, "std_scale": scale, "inner_kl": float(kl),
                     "mean_shift": float(shift), "return_pre": float(returns[0]), "return_post": float(returns[-1]),
                     "wall_s": round(time.time() - t0, 1)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="cheetah_dir")
    parser.add_argument("--algos", nargs="+", required=True)
    parser.add_argument("--tasks", type=int, default=8, help="tasks in the meta-batch (default 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--std-scale", type=float, nargs="+", default=[1.0])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.tasks < 1 or any(s <= 0 for s in args.std_scale):
        raise SystemExit("inner_step_size: --tasks must be >= 1 and --std-scale > 0")
    rows = []
    for entry in args.algos:
        label, algo_name, overrides = parse_entry(entry)
        for row in measure(algo_name, args.env, overrides, args.tasks, args.seed, args.std_scale):
            row = {"label": label, **row}
            rows.append(row)
            scale = row["std_scale"]
            print(f"{label:>12} std x{scale:<5g} inner lr {row['inner_lr']:<6g} inner KL {row['inner_kl']:.3g}  "
                  f"mean shift {row['mean_shift']:.3g}  return {row['return_pre']:.1f} -> {row['return_post']:.1f}",
                  flush=True)
    if args.out:
        record = {"command": " ".join(["python", "experiments/inner_step_size.py", *sys.argv[1:]]),
                  "env": args.env, "tasks": args.tasks, "seed": args.seed, "rows": rows,
                  "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "jax": jax.__version__,
                           "numpy": np.__version__}}
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=2)


if __name__ == "__main__":
    main()

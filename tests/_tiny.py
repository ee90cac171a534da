"""Tiny, fast run configurations shared by the trainer and CLI tests."""

from __future__ import annotations

import dataclasses

from jmeta.algos.maml import MAML
from jmeta.config import TrainConfig

TINY_MAML = MAML.TINY

TINY_ARGS = [
    "--algo", "maml", "--env", "point_nav", "--env-horizon", "10", "--meta-batch-size", "3",
    "--chunk-size", "2", "--eval-tasks", "4", "--maml.episodes-per-task", "3",
    "--maml.hidden-sizes", "16", "--maml.eval-adapt-steps", "1", "--maml.eval-episodes-per-task", "2",
    "--maml.cg-iters", "3", "--no-progress", "--no-report",
]


def tiny_config(logdir: str, **overrides) -> TrainConfig:
    base = TrainConfig(
        algo="maml", env="point_nav", env_horizon=10, meta_iters=4, meta_batch_size=3, chunk_size=2,
        eval_every=2, eval_tasks=4, checkpoint_every=2, logdir=logdir, progress=False, plots=False, report=False,
        tensorboard=False, algo_config=TINY_MAML,
    )
    return dataclasses.replace(base, **overrides)

#: For tests that run a few MJX/physics steps: XLA's backend optimisations only cost compile time
#: there (MJX and the JAX kinematics compile 2-3x faster without them; float32 arithmetic either way).
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}

"""Per (algorithm, environment) defaults applied before command-line overrides."""

from __future__ import annotations

import dataclasses
from typing import Any

from jmeta.config import TrainConfig

#: Overrides of TrainConfig fields; nested dicts override the algorithm section.
PRESETS: dict[tuple[str, str], dict[str, Any]] = {
    # cbfinn/maml_rl point navigation: (100, 100) ReLU policy, 20 episodes per task, H 100,
    # TRPO step 0.01; inner lr 0.1 as in REFERENCE.md; 20 tasks per batch to fit a CPU.
    ("maml", "point_nav"): {
        "meta_iters": 100,
        "meta_batch_size": 20,
        "eval_every": 25,
        "checkpoint_every": 25,
        "maml": {"episodes_per_task": 20, "inner_lr": 0.1, "hidden_sizes": (100, 100)},
    },
    # tristandeleu/pytorch-maml-rl configs/maml/halfcheetah-vel.yaml: tanh (64, 64), H 100,
    # 20 episodes per task, fast lr 0.1, 1 inner step, gamma 0.99, GAE lambda 1, TRPO max-kl 0.01,
    # 10 CG iterations, damping 1e-5, backtrack 0.8; 40 tasks x 500 batches. Scaled for a 2-core
    # CPU: 20 tasks x 10 episodes per meta-batch, 300 meta-iterations. Actions normalised with
    # scale 10 as there (exploration std 0.1 in motor units at init).
    ("maml", "cheetah_vel"): {
        "meta_iters": 300,
        "meta_batch_size": 20,
        "env_horizon": 100,
        "action_scale": 10.0,
        "eval_every": 50,
        "checkpoint_every": 50,
        "maml": {
            "episodes_per_task": 10,
            "inner_lr": 0.1,
            "hidden_sizes": (64, 64),
            "activation": "tanh",
            "eval_episodes_per_task": 10,
        },
    },
    # RL² on VariBAD's GridNavi (4 episodes x 15 steps per trial). lmzintgraf/varibad
    # config/gridworld/args_grid_rl2.py trains A2C with 16 processes for 1e8 frames (GRU 64,
    # gamma 0.95); here PPO over whole trials, 64 tasks per iteration, 500 iterations (1.9M steps).
    ("rl2", "grid_nav"): {
        "meta_iters": 500,
        "meta_batch_size": 64,
        "chunk_size": 25,
        "eval_every": 50,
        "checkpoint_every": 50,
        "rl2": {"hidden_size": 128, "lr": 1e-3, "num_minibatches": 4, "ppo_epochs": 4, "entropy_coef": 0.01},
    },
    # RL² bandits (default variant: 5 arms, 10 pulls per trial); the learning test's setting run longer.
    ("rl2", "bandit"): {
        "meta_iters": 1000,
        "meta_batch_size": 128,
        "chunk_size": 50,
        "eval_every": 100,
        "checkpoint_every": 100,
        "eval_tasks": 200,
        "rl2": {"hidden_size": 64, "embed_sizes": (32,), "head_sizes": (32,), "lr": 1e-3},
    },
    # RL² random tabular MDPs (10 states, 5 actions, 10 episodes of 10 steps per trial). Trial returns
    # are about 100: rewards scaled by 0.1 for the value targets (unscaled, the value loss swamped
    # the policy gradient under global-norm clipping and nothing was learned in 500 iterations).
    ("rl2", "tabular_mdp"): {
        "meta_iters": 500,
        "meta_batch_size": 64,
        "chunk_size": 25,
        "eval_every": 50,
        "checkpoint_every": 50,
        "rl2": {"hidden_size": 128, "lr": 1e-3, "reward_scale": 0.1},
    },
}


def preset_config(algo: str, env: str) -> TrainConfig:
    """TrainConfig for ``algo`` on ``env`` with that pair's preset applied (defaults otherwise)."""
    from jmeta.algos import list_algorithms

    config = TrainConfig(algo=algo, env=env) if algo in list_algorithms() else TrainConfig(env=env)
    overrides = dict(PRESETS.get((algo, env), {}))
    nested = {}
    for field in [f.name for f in dataclasses.fields(TrainConfig)]:
        if field in overrides and isinstance(overrides[field], dict):
            nested[field] = dataclasses.replace(getattr(config, field), **overrides.pop(field))
    return dataclasses.replace(config, **overrides, **nested)

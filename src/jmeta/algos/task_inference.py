"""Task inference (Humplik et al. 2019): the belief is trained to predict the true task.

The same agent as VariBAD (:mod:`jmeta.algos.varibad`): a recurrent encoder gives a Gaussian
belief over a task latent at every step of a trial and a PPO policy acts on (state, belief mean,
belief log-variance). Instead of reconstructing rewards, the belief is trained with supervision
from the task: a task decoder maps each belief's latent sample to the task's feature vector
(:func:`jmeta.envs.base.task_features`, e.g. the goal position) with a squared-error loss, summed
over the beliefs of the trial, plus the same KL term. This is lmzintgraf/varibad's ``*_humplik``
configuration (``decode_reward=False``, ``decode_task=True``, ``task_pred_type="task_description"``);
as its README says, it is built on the VariBAD architecture and so differs in details from
Humplik et al.'s own agent.

``--task_inference.policy-input task`` gives the policy the true task features instead (the belief
oracle, an upper reference); every other option is VariBAD's.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from jmeta.algos import varibad
from jmeta.algos.base import Preset
from jmeta.algos.varibad import VariBAD, VariBADConfig


@dataclasses.dataclass(frozen=True)
class TaskInferenceConfig(VariBADConfig):
    """Task inference (Humplik et al. 2019): VariBAD's agent with the belief trained to predict the task."""

    decode_reward: bool = False
    """Also reconstruct rewards (off: the belief learns from the task alone)."""
    decode_task: bool = True
    """Reconstruct the task features from the latent (the supervision of task inference)."""


#: Tiny settings for tests: VariBAD's, with the task decoder instead of the reward decoder.
TINY = TaskInferenceConfig(**{**dataclasses.asdict(varibad.TINY), "decode_reward": False, "decode_task": True})

#: VariBAD's reward-decoder settings (and its ELBO subsampling: the task loss is cheap, every term is kept).
_REWARD_DECODING = ("reward_decoder", "reward_multi_head", "reward_decoder_layers", "subsample_elbos",
                    "subsample_decodes")
_VB = "lmzintgraf/varibad config/{}.py"
PRESETS: dict[str, Preset] = {
    "grid_nav": Preset(
        run={"meta_iters": 2000, "meta_batch_size": 16, "chunk_size": 100, "eval_every": 500,
             "checkpoint_every": 500},
        algo={**{k: v for k, v in varibad.PRESETS["grid_nav"].algo.items() if k not in _REWARD_DECODING},
              "task_decoder_layers": (32, 32)},
        source="VariBAD's grid_nav preset (lmzintgraf/varibad config/gridworld/args_grid_varibad.py scaled for "
               "CPU: 2,000 iterations x 16 trials, 1.9M env steps) with the task decoder of the *_humplik configs "
               "(the goal cell (x, y), squared error) instead of the reward decoder",
    ),
    "point_nav:sparse": Preset(
        run={"env_variant": "sparse", "meta_iters": 1000, "meta_batch_size": 16, "chunk_size": 50,
             "eval_every": 250, "checkpoint_every": 250},
        algo={"latent_size": 5, "encoder_hidden_size": 128, "state_embed": 32, "action_embed": 16,
              "reward_embed": 16, "task_decoder_layers": (64, 32), "kl_weight": 1.0, "vae_buffer_trials": 10_000,
              "vae_batch_trials": 10, "vae_updates": 3, "subsample_elbos": 50, "subsample_decodes": 50,
              "encoder_truncation": 50, "policy_layers": (128, 128, 128), "obs_embed": 64, "context_embed": 64,
              "lr": 7e-4, "ppo_epochs": 2, "num_minibatches": 8, "clip_eps": 0.1, "value_clip_eps": 0.1,
              "entropy_coef": 1e-3, "gamma": 0.99, "gae_lambda": 0.9, "normalize_rewards": True},
        source=_VB.format("pointrobot/args_pointrobot_humplik") + " (5e7 frames); 16 trials of 3 x 100 steps per "
               "iteration, 1,000 iterations (4.8M env steps, about a tenth of the authors' budget)",
    ),
}


@dataclasses.dataclass(frozen=True)
class TaskInference(VariBAD):
    """Task inference over ``env`` and ``task_dist`` (module docstring)."""

    name: ClassVar[str] = "task_inference"
    Config: ClassVar[type] = TaskInferenceConfig
    TINY: ClassVar[TaskInferenceConfig] = TINY
    PRESETS: ClassVar[dict[str, Preset]] = PRESETS

"""k-armed Bernoulli bandits (Duan et al. 2016, RL²).

Sources: openai/gym ``gym/envs/rl2/bernoulli_bandit.py`` (``BernoulliBanditEnv``, written for
RL²) and the RL² research code florensacc/rllab-curriculum
``sandbox/rocky/neural_learner/envs/mab_env.py`` (``MABEnv``):

  task: arm means ``p ~ U[0, 1]^k``; pulling arm ``a`` pays ``r ~ Bernoulli(p[a])``;
  every pull is one episode (H = 1); a trial is ``n`` pulls (``episodes_per_trial = n``);
  the observation is a constant placeholder (gym: ``Discrete(1)``, always 0; here its one-hot
  encoding, the 1-d vector ``[1.0]``). The recurrent policy gets the previous action, reward and
  done flag from the rollout engine (:class:`jmeta.rollout.RecurrentInput`).

The step ``info`` holds ``expected_reward = p[a]`` and ``regret = max(p) - p[a]`` so that the
expected (pseudo-)regret of a trial can be computed without the reward noise.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct

from jmeta.envs.base import EnvSpec, StepOut
from jmeta.envs.registry import EnvEntry, register
from jmeta.errors import ConfigError
from jmeta.spaces import Box, Discrete
from jmeta.tasks import TaskDistributionBase


@struct.dataclass
class BanditTask:
    """probs: float32[k], the success probability of every arm."""

    probs: jax.Array


@struct.dataclass
class BanditState:
    """time: int32 step counter within the episode (an episode is one pull)."""

    time: jax.Array


@dataclasses.dataclass(frozen=True)
class BanditParams:
    """Static definition of one bandit variant (overridable through ``jmeta.make``).

    ``episodes_per_trial`` is the number of pulls ``n`` of a trial; ``horizon`` stays 1 in RL².
    """

    num_arms: int = 5
    episodes_per_trial: int = 10
    horizon: int = 1
    prob_low: float = 0.0
    prob_high: float = 1.0


#: RL² evaluated k in {5, 10, 50} arms and n in {10, 100, 500} pulls; "default" is k = 5, n = 10.
VARIANTS: dict[str, BanditParams] = {"default": BanditParams()}
for _k in (5, 10, 50):
    for _n in (10, 100, 500):
        if (_k, _n) != (5, 10):
            VARIANTS[f"k{_k}_n{_n}"] = BanditParams(num_arms=_k, episodes_per_trial=_n)
del _k, _n

_SOURCE = "openai/gym gym/envs/rl2/bernoulli_bandit.py (RL², Duan et al. 2016)"
SOURCES = {name: _SOURCE for name in VARIANTS}


def _check(params: BanditParams) -> None:
    if params.num_arms < 2:
        raise ConfigError(f"bandit.num_arms must be >= 2, got {params.num_arms}")
    if params.episodes_per_trial < 1:
        raise ConfigError(f"bandit.episodes_per_trial must be >= 1, got {params.episodes_per_trial}")
    if not 0.0 <= params.prob_low <= params.prob_high <= 1.0:
        raise ConfigError(
            f"bandit needs 0 <= prob_low <= prob_high <= 1, got {params.prob_low}, {params.prob_high}"
        )


@dataclasses.dataclass(frozen=True)
class BanditTaskDistribution(TaskDistributionBase):
    """Arm means i.i.d. ``U[prob_low, prob_high]`` (RL²: ``U[0, 1]``)."""

    params: BanditParams

    def sample(self, key: jax.Array) -> BanditTask:
        p = self.params
        probs = jax.random.uniform(key, (p.num_arms,), jnp.float32, p.prob_low, p.prob_high)
        return BanditTask(probs=probs)


class Bandit:
    """Bernoulli multi-armed bandit. See the module docstring for the definition."""

    VERSION = "1"

    def __init__(self, params: BanditParams, variant: str = "default"):
        _check(params)
        self.params = params
        self.spec = EnvSpec.from_params(
            "bandit", variant, params,
            observation_space=Box(0.0, 1.0, (1,)),
            action_space=Discrete(params.num_arms),
            version=self.VERSION,
            source=SOURCES,
        )

    def reset(self, key: jax.Array, task: BanditTask) -> tuple[jax.Array, BanditState]:
        del key, task
        return jnp.ones(1, jnp.float32), BanditState(time=jnp.zeros((), jnp.int32))

    def step(self, key: jax.Array, state: BanditState, action: jax.Array, task: BanditTask) -> StepOut:
        arm = jnp.clip(jnp.asarray(action, jnp.int32), 0, self.params.num_arms - 1)
        mean = task.probs[arm]
        reward = (jax.random.uniform(key, (), jnp.float32) < mean).astype(jnp.float32)
        new_state = BanditState(time=state.time + 1)
        return StepOut(
            obs=jnp.ones(1, jnp.float32),
            state=new_state,
            reward=reward,
            terminated=jnp.zeros((), bool),
            truncated=new_state.time >= self.params.horizon,
            info={
                "expected_reward": mean.astype(jnp.float32),
                "regret": (jnp.max(task.probs) - mean).astype(jnp.float32),
            },
        )


register(
    "bandit",
    EnvEntry(
        variants=VARIANTS,
        build=lambda p, v: (Bandit(p, v), BanditTaskDistribution(p)),
        description="RL² Bernoulli k-armed bandit, p ~ U[0,1]^k, one pull per episode, n pulls",
    ),
)

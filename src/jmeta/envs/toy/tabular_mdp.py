"""Random tabular MDPs (Duan et al. 2016, RL²).

Sources: openai/gym ``gym/envs/rl2/random_tabular_mdp.py`` (``RandomTabularMDPEnv``, written for
RL², with its test ``gym/envs/rl2/tests/test_rl2.py``) and the RL² research code
florensacc/rllab-curriculum ``sandbox/rocky/neural_learner/envs/random_tabular_mdp_env.py``:

  10 states, 5 actions; per task the mean rewards ``mu[s, a] ~ N(1, 1)`` and the transition rows
  ``P[s, a, :] ~ Dirichlet(1, ..., 1)`` (flat); a step from ``s`` with action ``a`` goes to
  ``s' ~ P[s, a, :]`` and pays ``r ~ N(mu[s, a], 1)``; every episode starts in state 0; episodes
  last 10 steps (H = 10, never terminate early); a trial is ``n`` episodes of one MDP.
  The observation is the current state, one-hot: float32[num_states].

The step ``info`` holds ``expected_reward = mu[s, a]``.
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
class TabularMDPTask:
    """transitions: float32[S, A, S], rows ``P[s, a, :]`` sum to 1; reward_means: float32[S, A]."""

    transitions: jax.Array
    reward_means: jax.Array


@struct.dataclass
class TabularMDPState:
    """state: int32 current state index; time: int32 step counter within the episode."""

    state: jax.Array
    time: jax.Array


@dataclasses.dataclass(frozen=True)
class TabularMDPParams:
    """Static definition of one tabular_mdp variant (overridable through ``jmeta.make``)."""

    num_states: int = 10
    num_actions: int = 5
    horizon: int = 10
    episodes_per_trial: int = 10
    initial_state: int = 0
    reward_mean_loc: float = 1.0  # mu ~ N(reward_mean_loc, reward_mean_scale^2)
    reward_mean_scale: float = 1.0
    reward_noise_scale: float = 1.0  # r ~ N(mu, reward_noise_scale^2)
    dirichlet_alpha: float = 1.0


#: RL² evaluated n in {10, 25, 50, 75, 100} episodes per trial; "default" is n = 10.
VARIANTS: dict[str, TabularMDPParams] = {"default": TabularMDPParams()}
for _n in (25, 50, 75, 100):
    VARIANTS[f"n{_n}"] = TabularMDPParams(episodes_per_trial=_n)
del _n

_SOURCE = "openai/gym gym/envs/rl2/random_tabular_mdp.py (RL², Duan et al. 2016)"
SOURCES = {name: _SOURCE for name in VARIANTS}


def _check(params: TabularMDPParams) -> None:
    if params.num_states < 2:
        raise ConfigError(f"tabular_mdp.num_states must be >= 2, got {params.num_states}")
    if params.num_actions < 2:
        raise ConfigError(f"tabular_mdp.num_actions must be >= 2, got {params.num_actions}")
    if params.episodes_per_trial < 1:
        raise ConfigError(f"tabular_mdp.episodes_per_trial must be >= 1, got {params.episodes_per_trial}")
    if not 0 <= params.initial_state < params.num_states:
        raise ConfigError(
            f"tabular_mdp.initial_state must be in [0, {params.num_states}), got {params.initial_state}"
        )
    if params.dirichlet_alpha <= 0:
        raise ConfigError(f"tabular_mdp.dirichlet_alpha must be > 0, got {params.dirichlet_alpha}")
    if params.reward_mean_scale < 0 or params.reward_noise_scale < 0:
        raise ConfigError("tabular_mdp reward scales must be >= 0")


@dataclasses.dataclass(frozen=True)
class TabularMDPTaskDistribution(TaskDistributionBase):
    """``mu ~ N(1, 1)`` i.i.d. per (s, a); ``P[s, a] ~ Dirichlet(1)`` i.i.d. per (s, a)."""

    params: TabularMDPParams

    def sample(self, key: jax.Array) -> TabularMDPTask:
        p = self.params
        k_p, k_r = jax.random.split(key)
        shape = (p.num_states, p.num_actions, p.num_states)
        if p.dirichlet_alpha == 1.0:
            # Dirichlet(1, ..., 1) is a normalised vector of i.i.d. Exp(1) = Gamma(1) draws; this
            # avoids the gamma sampler's rejection loop (slow to compile).
            gammas = jax.random.exponential(k_p, shape, jnp.float32)
        else:
            gammas = jax.random.gamma(k_p, jnp.float32(p.dirichlet_alpha), shape, jnp.float32)
        transitions = gammas / gammas.sum(axis=-1, keepdims=True)
        noise = jax.random.normal(k_r, (p.num_states, p.num_actions), jnp.float32)
        return TabularMDPTask(transitions=transitions, reward_means=p.reward_mean_loc + p.reward_mean_scale * noise)


class TabularMDP:
    """Random tabular MDP with a one-hot state observation. See the module docstring."""

    VERSION = "1"

    def __init__(self, params: TabularMDPParams, variant: str = "default"):
        _check(params)
        self.params = params
        self.spec = EnvSpec.from_params(
            "tabular_mdp", variant, params,
            observation_space=Box(0.0, 1.0, (params.num_states,)),
            action_space=Discrete(params.num_actions),
            version=self.VERSION,
            source=SOURCES,
        )

    def observe(self, state: jax.Array) -> jax.Array:
        """One-hot observation of a state index: float32[num_states]."""
        return jax.nn.one_hot(state, self.params.num_states, dtype=jnp.float32)

    def reset(self, key: jax.Array, task: TabularMDPTask) -> tuple[jax.Array, TabularMDPState]:
        del key, task  # every episode starts in the same state (0)
        state = TabularMDPState(
            state=jnp.asarray(self.params.initial_state, jnp.int32), time=jnp.zeros((), jnp.int32)
        )
        return self.observe(state.state), state

    def step(
        self, key: jax.Array, state: TabularMDPState, action: jax.Array, task: TabularMDPTask
    ) -> StepOut:
        p = self.params
        k_s, k_r = jax.random.split(key)
        a = jnp.clip(jnp.asarray(action, jnp.int32), 0, p.num_actions - 1)
        probs = task.transitions[state.state, a]
        next_state = jax.random.categorical(k_s, jnp.log(probs)).astype(jnp.int32)
        mean = task.reward_means[state.state, a]
        reward = mean + p.reward_noise_scale * jax.random.normal(k_r, (), jnp.float32)
        new_state = TabularMDPState(state=next_state, time=state.time + 1)
        return StepOut(
            obs=self.observe(next_state),
            state=new_state,
            reward=reward.astype(jnp.float32),
            terminated=jnp.zeros((), bool),
            truncated=new_state.time >= p.horizon,
            info={"expected_reward": mean.astype(jnp.float32)},
        )


register(
    "tabular_mdp",
    EnvEntry(
        variants=VARIANTS,
        build=lambda p, v: (TabularMDP(p, v), TabularMDPTaskDistribution(p)),
        description="RL² random tabular MDP: 10 states, 5 actions, N(1,1) means, Dirichlet(1) rows",
    ),
)

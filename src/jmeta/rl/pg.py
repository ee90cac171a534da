"""The policy-gradient batch: returns, a fitted baseline and advantages for a task's episodes.

Gradient-based meta-learners (MAML and its family) build one :class:`PGBatch` per task and per
inner step: discounted returns-to-go, rllab's linear feature baseline fitted in closed form on the
batch itself (:mod:`jmeta.networks.baseline`), GAE(gamma, lambda) over that baseline, and
optionally advantages standardised over the batch's valid steps (rllab's ``center_adv``).

    >>> batch = pg_batch(traj, gamma=0.99, gae_lambda=1.0, normalize=True)   # traj leaves [E, T, ...]
"""

from __future__ import annotations

import chex
import jax
from flax import struct

from jmeta.networks import baseline as linear_baseline
from jmeta.rl import returns as rl_returns
from jmeta.types import Trajectory


@struct.dataclass
class PGBatch:
    """A task's batch of episodes with what the policy-gradient losses need. Leaves [E, T, ...].

    advantages: [E, T], GAE over the baseline (standardised if requested), 0 where masked.
    baseline: [E, T], the baseline's values (DiCE's variance-reduction term uses them).
    """

    traj: Trajectory
    advantages: jax.Array
    baseline: jax.Array


def pg_batch(traj: Trajectory, gamma: float | jax.Array, gae_lambda: float | jax.Array,
             normalize: bool) -> PGBatch:
    """Baseline fit and advantages for one task's episodes (leaves [E, T, ...]); no gradient flows."""
    chex.assert_rank([traj.reward, traj.mask], 2)
    chex.assert_equal_shape([traj.reward, traj.mask, traj.time])
    rets = jax.vmap(rl_returns.discounted_returns, in_axes=(0, 0, None))(traj.reward, traj.mask, gamma)
    values = linear_baseline.fit_predict(traj.obs, traj.time, traj.mask, rets)
    adv = jax.vmap(rl_returns.gae, in_axes=(0, 0, 0, None, None))(traj.reward, values, traj.mask, gamma, gae_lambda)
    if normalize:
        adv = rl_returns.normalize(adv, traj.mask)
    return jax.lax.stop_gradient(PGBatch(traj=traj, advantages=adv, baseline=values))

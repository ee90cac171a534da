"""Non-learning reference policies for the bandit and grid_nav tasks.

Every policy is an actor of :mod:`jmeta.rollout` built from a recurrent step function
``step_fn(params, carry, inputs, key) -> (carry, action, log_prob)`` and its initial carry, so it
runs through the real trial engine (:func:`jmeta.rollout.rollout_trial`) under ``jit``/``vmap``
exactly like an RL² agent: it sees only the observation and the previous action, reward and done
flag. Oracles (``uses_task=True``) are privileged actors: their step function receives the task
(from the engine's privileged view) as ``params``; the others ignore ``params``.

``log_prob`` is the log-probability of the chosen action where it has a closed form (uniform
random, greedy ties, deterministic choices); Thompson sampling returns 0.

Bandits (:mod:`jmeta.envs.toy.bandit`): :func:`uniform`, :func:`bandit_greedy`,
:func:`bandit_thompson`, :func:`bandit_ucb1`; score a trial with :func:`bandit_trial_regret`.
Grid navigation (:mod:`jmeta.envs.toy.grid_nav`): :func:`uniform`, :func:`grid_oracle`,
:func:`grid_bayes_search`. Point navigation (:mod:`jmeta.envs.toy.point_nav`): :func:`point_oracle`.
:func:`run_trials` rolls a policy out on a batch of tasks.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jmeta.envs.base import MetaEnv, Task
from jmeta.envs.toy.grid_nav import GridNavParams, candidate_goals, manhattan, move
from jmeta.rollout import rollout_trial
from jmeta.types import StepInputs, Trajectory

RecurrentInput = StepInputs  # what the step functions below read: obs, prev_action, prev_reward, prev_done


@dataclasses.dataclass(frozen=True)
class ReferencePolicy:
    """A non-learning actor for :func:`jmeta.rollout.rollout_trial`.

    name: short label; init_carry: the carry at the start of a trial (a pytree of arrays);
    step_fn: the recurrent step function; uses_task: the policy is an oracle, a privileged actor
    whose step function gets the task as ``params``.
    """

    name: str
    init_carry: Any
    step_fn: Any
    uses_task: bool = False

    @property
    def privileged(self) -> bool:
        return self.uses_task

    def initial_carry(self, params: Any, key: jax.Array) -> Any:
        return self.init_carry

    def episode_start(self, params: Any, carry: Any, inputs: StepInputs, key: jax.Array) -> Any:
        return carry

    def act(self, params: Any, carry: Any, inputs: StepInputs, key: jax.Array):
        carry, action, log_prob = self.step_fn(inputs.task if self.uses_task else params, carry, inputs, key)
        return carry, action, log_prob, {}


def run_trials(
    env: MetaEnv,
    policy: ReferencePolicy,
    tasks: Task,
    key: jax.Array,
    num_episodes: int | None = None,
) -> tuple[Trajectory, Any]:
    """One trial per task (leading axis N) through ``rollout_trial``, jitted and vmapped.

    Returns ``(trajectory, final_carry)``: trajectory leaves ``[N, K, T, ...]``, carry leaves
    ``[N, ...]``.
    """
    num_tasks = jax.tree_util.tree_leaves(tasks)[0].shape[0]

    def one(task, k):
        return rollout_trial(env, policy, None, task, k, num_episodes)

    return jax.jit(jax.vmap(one))(tasks, jax.random.split(key, num_tasks))


# ---------------------------------------------------------------- any discrete action space


def uniform(num_actions: int) -> ReferencePolicy:
    """Uniformly random actions in ``{0, ..., num_actions - 1}`` (no memory)."""
    log_prob = -jnp.log(jnp.float32(num_actions))

    def step_fn(params, carry, inputs: RecurrentInput, key):
        del params, inputs
        return carry, jax.random.randint(key, (), 0, num_actions, jnp.int32), log_prob

    return ReferencePolicy("uniform", jnp.zeros((), jnp.int32), step_fn)


# ---------------------------------------------------------------- bandits


@struct.dataclass
class BanditCounts:
    """counts, successes: float32[k] per-arm pulls and rewards so far; t: int32 pulls so far."""

    counts: jax.Array
    successes: jax.Array
    t: jax.Array


def _bandit_init(num_arms: int) -> BanditCounts:
    zeros = jnp.zeros((num_arms,), jnp.float32)
    return BanditCounts(counts=zeros, successes=zeros, t=jnp.zeros((), jnp.int32))


def _bandit_observe(carry: BanditCounts, inputs: RecurrentInput) -> BanditCounts:
    """Adds the previous pull (every step after the first has one) to the counts.

    ``prev_done`` cannot tell: every later step of a bandit trial starts a new episode, and the
    first step of the trial has ``prev_done = 0``; the pull counter ``t`` does. (At the first step
    ``prev_action`` is -1 or 0 depending on the rollout engine; it is masked out either way.)
    """
    num_arms = carry.counts.shape[0]
    pulled = jax.nn.one_hot(inputs.prev_action, num_arms, dtype=jnp.float32) * (carry.t > 0)
    return BanditCounts(
        counts=carry.counts + pulled,
        successes=carry.successes + pulled * inputs.prev_reward,
        t=carry.t,
    )


def _empirical_means(carry: BanditCounts) -> jax.Array:
    return carry.successes / jnp.maximum(carry.counts, 1.0)


def bandit_greedy(num_arms: int) -> ReferencePolicy:
    """Pulls every arm once in order, then always the arm with the highest empirical mean.

    Ties among the best arms are broken uniformly at random (``log_prob = -log(#ties)``).
    """

    def step_fn(params, carry, inputs: RecurrentInput, key):
        del params
        carry = _bandit_observe(carry, inputs)
        means = _empirical_means(carry)
        best = means == means.max()
        scores = jnp.where(best, jax.random.uniform(key, (num_arms,)), -1.0)
        exploit = jnp.argmax(scores).astype(jnp.int32)
        init_phase = carry.t < num_arms
        action = jnp.where(init_phase, carry.t, exploit).astype(jnp.int32)
        log_prob = jnp.where(init_phase, 0.0, -jnp.log(best.sum().astype(jnp.float32)))
        return carry.replace(t=carry.t + 1), action, log_prob

    return ReferencePolicy("greedy", _bandit_init(num_arms), step_fn)


def bandit_thompson(num_arms: int, prior_alpha: float = 1.0, prior_beta: float = 1.0) -> ReferencePolicy:
    """Thompson sampling with a ``Beta(prior_alpha, prior_beta)`` prior per arm (default Beta(1, 1))."""

    def step_fn(params, carry, inputs: RecurrentInput, key):
        del params
        carry = _bandit_observe(carry, inputs)
        a = prior_alpha + carry.successes
        b = prior_beta + carry.counts - carry.successes
        theta = jax.random.beta(key, a, b)
        action = jnp.argmax(theta).astype(jnp.int32)
        return carry.replace(t=carry.t + 1), action, jnp.zeros((), jnp.float32)

    return ReferencePolicy("thompson", _bandit_init(num_arms), step_fn)


def bandit_ucb1(num_arms: int) -> ReferencePolicy:
    """UCB1 (Auer et al. 2002): every arm once in order, then ``argmax mean + sqrt(2 ln t / n_a)``.

    ``t`` is the number of pulls so far; ties go to the lowest arm index (deterministic).
    """

    def step_fn(params, carry, inputs: RecurrentInput, key):
        del params, key
        carry = _bandit_observe(carry, inputs)
        t = jnp.maximum(carry.t, 1).astype(jnp.float32)
        bonus = jnp.sqrt(2.0 * jnp.log(t) / jnp.maximum(carry.counts, 1.0))
        exploit = jnp.argmax(_empirical_means(carry) + bonus).astype(jnp.int32)
        action = jnp.where(carry.t < num_arms, carry.t, exploit).astype(jnp.int32)
        return carry.replace(t=carry.t + 1), action, jnp.zeros((), jnp.float32)

    return ReferencePolicy("ucb1", _bandit_init(num_arms), step_fn)


def bandit_trial_regret(task: Any, actions: jax.Array) -> jax.Array:
    """Expected regret of the pulls ``actions`` (any shape) on ``task``: sum of ``max(p) - p[a]``.

    ``task`` is a :class:`jmeta.envs.toy.bandit.BanditTask` (``probs: [k]``); vmap for a batch.
    """
    probs = task.probs
    return (probs.max() - probs[jnp.asarray(actions, jnp.int32)]).sum()


def bandit_trial_expected_reward(task: Any, actions: jax.Array) -> jax.Array:
    """Expected total reward of the pulls ``actions`` on ``task``: sum of ``p[a]``."""
    return task.probs[jnp.asarray(actions, jnp.int32)].sum()


# ---------------------------------------------------------------- grid navigation


def _cell(obs: jax.Array) -> jax.Array:
    """grid_nav observation (float x, y) -> int32[2] cell."""
    return jnp.round(obs[:2]).astype(jnp.int32)


def step_toward(position: jax.Array, target: jax.Array) -> jax.Array:
    """The grid_nav action of a shortest path from ``position`` to ``target``: x first, then y.

    right (2) / left (4) while the columns differ, then up (1) / down (3), noop (0) on the target.
    """
    dx = target[0] - position[0]
    dy = target[1] - position[1]
    action = jnp.where(dx > 0, 2, jnp.where(dx < 0, 4, jnp.where(dy > 0, 1, jnp.where(dy < 0, 3, 0))))
    return action.astype(jnp.int32)


def grid_oracle() -> ReferencePolicy:
    """Knows the goal (``params`` = the :class:`~jmeta.envs.toy.grid_nav.GridNavTask`); walks a
    shortest path (:func:`step_toward`) and then stays on the goal with noop."""

    def step_fn(task, carry, inputs: RecurrentInput, key):
        del key
        return carry, step_toward(_cell(inputs.obs), task.goal), jnp.zeros((), jnp.float32)

    return ReferencePolicy("oracle", jnp.zeros((), jnp.int32), step_fn, uses_task=True)


@struct.dataclass
class GridBelief:
    """Carry of :func:`grid_bayes_search`.

    position: int32[2], the cell observed at the previous step (before the previous action);
    ruled_out: bool[N], candidate goals visited without the goal reward; goal: int32[2] and
    goal_known: bool, set once the goal reward was received; started: bool, a previous step exists.
    """

    position: jax.Array
    ruled_out: jax.Array
    goal: jax.Array
    goal_known: jax.Array
    started: jax.Array


def grid_posterior(belief: GridBelief, num_cells: int = 5) -> jax.Array:
    """The exact posterior over the candidate goals (float32[N], order of ``candidate_goals``).

    Uniform over the candidates not ruled out; a point mass on the goal once it is known.
    """
    alive = (~belief.ruled_out).astype(jnp.float32)
    uniform_part = alive / jnp.maximum(alive.sum(), 1.0)
    cands = jnp.asarray(candidate_goals(num_cells))
    point = jnp.all(cands == belief.goal, axis=-1).astype(jnp.float32)
    return jnp.where(belief.goal_known, point, uniform_part)


def grid_bayes_search(params: GridNavParams | None = None) -> ReferencePolicy:
    """Bayes-optimal-style search with the exact goal posterior (see :func:`grid_posterior`).

    At every step it moves (:func:`step_toward`) to the nearest cell (Manhattan distance) of
    maximal posterior probability, ties broken by the order of ``candidate_goals``; once the goal
    reward was received it walks straight to the goal in this and every later episode.

    The reward of the previous step belongs to the cell reached by the previous action, which at an
    episode start is not the observed (reset) cell, so the carry keeps the previous cell and
    recomputes where the previous action led with :func:`jmeta.envs.toy.grid_nav.move`.
    """
    params = GridNavParams() if params is None else params
    num_cells = params.num_cells
    cands = jnp.asarray(candidate_goals(num_cells))
    threshold = 0.5 * (params.goal_reward + params.step_reward)
    init = GridBelief(
        position=jnp.zeros(2, jnp.int32),
        ruled_out=jnp.zeros(cands.shape[0], bool),
        goal=jnp.zeros(2, jnp.int32),
        goal_known=jnp.zeros((), bool),
        started=jnp.zeros((), bool),
    )

    def step_fn(params_, belief: GridBelief, inputs: RecurrentInput, key):
        del params_, key
        landed = move(belief.position, inputs.prev_action, num_cells)
        found = belief.started & (inputs.prev_reward > threshold)
        missed = belief.started & ~found
        at_landed = jnp.all(cands == landed, axis=-1)
        belief = belief.replace(
            ruled_out=belief.ruled_out | (at_landed & missed),
            goal=jnp.where(found, landed, belief.goal),
            goal_known=belief.goal_known | found,
        )
        position = _cell(inputs.obs)
        # All remaining candidates share the maximal probability: go to the nearest (first in order).
        dist = jnp.where(belief.ruled_out, jnp.iinfo(jnp.int32).max, manhattan(cands, position))
        nearest = cands[jnp.argmin(dist)]
        any_left = ~jnp.all(belief.ruled_out)
        target = jnp.where(belief.goal_known, belief.goal, jnp.where(any_left, nearest, position))
        action = step_toward(position, target)
        new_belief = belief.replace(position=position, started=jnp.ones((), bool))
        return new_belief, action, jnp.zeros((), jnp.float32)

    return ReferencePolicy("bayes_search", init, step_fn)


# ---------------------------------------------------------------- reference numbers (env cards)


def reference_tables(num_tasks: int = 1000, seed: int = 0) -> str:
    """Markdown tables of the reference policies' scores, as quoted in ``docs/envs/grid_nav.md`` and
    ``docs/envs/bandit.md``: ``python -m jmeta.baselines.toy``.

    grid_nav: per-episode return (mean ± s.e.) over a trial of 4 episodes; the deterministic
    policies are scored on every goal (the exact expectation over the uniform goal), uniform random
    on ``num_tasks // 21`` trials per goal. bandit: expected total reward ``sum p[a]`` and expected
    regret ``sum max(p) - p[a]`` per trial (mean ± s.e. over ``num_tasks`` tasks) for every
    RL² variant.
    """
    import numpy as np

    from jmeta.envs.registry import make
    from jmeta.envs.toy.bandit import VARIANTS as BANDIT_VARIANTS
    from jmeta.envs.toy.grid_nav import GridNavTask
    from jmeta.tasks import sample_tasks

    def fmt(x: np.ndarray) -> str:
        return f"{x.mean():.2f} ± {x.std(ddof=1) / np.sqrt(len(x)):.2f}"

    key = jax.random.key(seed)
    env, _ = make("grid_nav")
    goals = candidate_goals(env.params.num_cells)
    lines = ["| grid_nav policy | episode 1 | episode 2 | episode 3 | episode 4 |", "|---|---|---|---|---|"]
    for policy, repeats in ((uniform(5), max(num_tasks // len(goals), 2)), (grid_bayes_search(), 1),
                            (grid_oracle(), 1)):
        tasks = GridNavTask(goal=jnp.asarray(np.tile(goals, (repeats, 1))))
        returns = np.asarray(run_trials(env, policy, tasks, key)[0].episode_return())
        cells = [f"{returns[:, k].mean():.3f}" if repeats == 1 else fmt(returns[:, k]) for k in range(4)]
        lines.append(f"| {policy.name} | " + " | ".join(cells) + " |")

    lines += ["", "| bandit variant (k, n) | policy | expected total reward | expected regret |",
              "|---|---|---|---|"]
    for name, params in sorted(BANDIT_VARIANTS.items(), key=lambda kv: (kv[1].num_arms, kv[1].episodes_per_trial)):
        env, dist = make("bandit", variant=name)
        k = params.num_arms
        tasks = sample_tasks(dist, key, num_tasks)
        for policy in (uniform(k), bandit_greedy(k), bandit_thompson(k), bandit_ucb1(k)):
            actions = run_trials(env, policy, tasks, key)[0].action
            reward = np.asarray(jax.vmap(bandit_trial_expected_reward)(tasks, actions))
            regret = np.asarray(jax.vmap(bandit_trial_regret)(tasks, actions))
            lines.append(f"| {name} ({k}, {params.episodes_per_trial}) | {policy.name} | {fmt(reward)} | {fmt(regret)} |")
    return "\n".join(lines)



# ---------------------------------------------------------------- point navigation


def point_oracle(max_step: float = 0.1) -> ReferencePolicy:
    """Knows the goal: moves straight at it, ``clip(goal - position, -max_step, max_step)`` per
    coordinate (the most the point robot can move), in the unwrapped env's action units."""

    def step_fn(task, carry, inputs: RecurrentInput, key):
        del key
        return carry, jnp.clip(task.goal - inputs.obs[:2], -max_step, max_step), jnp.zeros((), jnp.float32)

    return ReferencePolicy("oracle", jnp.zeros((), jnp.int32), step_fn, uses_task=True)


if __name__ == "__main__":
    print(reference_tables())

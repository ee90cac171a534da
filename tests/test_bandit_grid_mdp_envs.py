"""grid_nav (VariBAD GridNavi), bandit and tabular_mdp (RL²) against their definitions, and the
reference policies run through the real trial engine (``jmeta.rollout.rollout_trial``).

The contract tests of ``tests/test_envs.py`` cover these envs too (they run over the registry).
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jmeta
from jmeta.baselines import toy as rp
from jmeta.envs.toy.bandit import BanditState, BanditTask
from jmeta.envs.toy.grid_nav import (
    EXCLUDED_GOALS,
    GridNavState,
    GridNavTask,
    candidate_goals,
    move,
)
from jmeta.envs.toy.tabular_mdp import TabularMDPState
from jmeta.errors import ConfigError, UnknownNameError
from jmeta.rollout import rollout_trial
from jmeta.spaces import Discrete
from jmeta.tasks import sample_tasks

NOOP, UP, RIGHT, DOWN, LEFT = range(5)

# One compiled program per (distribution, count) instead of op-by-op eager sampling.
_sample = jax.jit(sample_tasks, static_argnums=(0, 2))


@functools.cache
def _tabular_tasks():
    """400 tasks of the default tabular_mdp, sampled once per test process."""
    env, dist = jmeta.make("tabular_mdp")
    return env, _sample(dist, jax.random.key(0), 400)


def _grid_state(x, y, t=0):
    return GridNavState(position=jnp.array([x, y], jnp.int32), time=jnp.asarray(t, jnp.int32))


def _goal(x, y):
    return GridNavTask(goal=jnp.array([x, y], jnp.int32))


def _oracle_return(goal, horizon=15):
    """From the definition: d - 1 steps at -0.1, then on the goal (+1) for the remaining steps."""
    d = abs(goal[0]) + abs(goal[1])
    return -0.1 * (d - 1) + (horizon - d + 1) * 1.0


# ---------------------------------------------------------------- grid_nav


def test_grid_nav_spec():
    env, _ = jmeta.make("grid_nav")
    assert env.spec.horizon == 15 and env.spec.episodes_per_trial == 4
    assert env.spec.action_space == Discrete(5)
    assert env.spec.observation_space.shape == (2,)
    assert jmeta.list_variants("grid_nav") == ["default"]


def test_grid_nav_candidate_goals():
    cands = candidate_goals()
    assert cands.shape == (21, 2) and cands.dtype == np.int32
    expected = [c for c in itertools.product(range(5), repeat=2) if c not in EXCLUDED_GOALS]
    assert [tuple(c) for c in cands.tolist()] == expected
    assert set(EXCLUDED_GOALS) == {(0, 0), (0, 1), (1, 0), (1, 1)}


def test_grid_nav_moves_and_walls():
    # VariBAD: up = y + 1, right = x + 1, down = y - 1, left = x - 1; off-grid moves stay put.
    cases = [
        ((2, 2), NOOP, (2, 2)), ((2, 2), UP, (2, 3)), ((2, 2), RIGHT, (3, 2)),
        ((2, 2), DOWN, (2, 1)), ((2, 2), LEFT, (1, 2)),
        ((0, 0), DOWN, (0, 0)), ((0, 0), LEFT, (0, 0)), ((0, 0), UP, (0, 1)), ((0, 0), RIGHT, (1, 0)),
        ((4, 4), UP, (4, 4)), ((4, 4), RIGHT, (4, 4)), ((4, 0), DOWN, (4, 0)), ((0, 4), LEFT, (0, 4)),
        ((4, 2), RIGHT, (4, 2)), ((3, 4), UP, (3, 4)),
    ]
    env, _ = jmeta.make("grid_nav")
    step = jax.jit(env.step)
    for start, action, end in cases:
        np.testing.assert_array_equal(move(jnp.array(start), action), end)
        out = step(jax.random.key(0), _grid_state(*start), jnp.int32(action), _goal(4, 4))
        np.testing.assert_array_equal(out.obs, np.asarray(end, np.float32))
        assert out.obs.dtype == jnp.float32
        np.testing.assert_array_equal(out.state.position, end)


def test_grid_nav_reward_after_move_and_never_terminates():
    env, _ = jmeta.make("grid_nav")
    step = jax.jit(env.step)
    task = _goal(2, 3)
    # Moving onto the goal pays +1 (the reward is computed after the move).
    out = step(jax.random.key(0), _grid_state(2, 2), jnp.int32(UP), task)
    assert float(out.reward) == pytest.approx(1.0)
    assert not bool(out.terminated)
    # Staying on the goal keeps paying +1.
    out = step(jax.random.key(0), out.state, jnp.int32(NOOP), task)
    assert float(out.reward) == pytest.approx(1.0)
    # Leaving it: -0.1; standing next to it: -0.1; a wall bump next to it: -0.1.
    out = step(jax.random.key(0), out.state, jnp.int32(RIGHT), task)
    assert float(out.reward) == pytest.approx(-0.1)
    out = step(jax.random.key(0), _grid_state(2, 3), jnp.int32(DOWN), task)
    assert float(out.reward) == pytest.approx(-0.1)
    # A full episode walking to the goal and staying: never terminated, truncated at step 15.
    _, state = env.reset(jax.random.key(0), task)
    actions = [RIGHT, RIGHT, UP, UP, UP] + [NOOP] * 10
    rewards = []
    for t, a in enumerate(actions):
        out = step(jax.random.key(t), state, jnp.int32(a), task)
        state = out.state
        rewards.append(float(out.reward))
        assert not bool(out.terminated)
        assert bool(out.truncated) == (t == 14)
    np.testing.assert_allclose(rewards, [-0.1] * 4 + [1.0] * 11, atol=1e-7)
    assert sum(rewards) == pytest.approx(_oracle_return((2, 3)))


def test_grid_nav_reset_returns_to_start():
    env, dist = jmeta.make("grid_nav")
    for seed in range(3):
        task = dist.sample(jax.random.key(seed))
        obs, state = env.reset(jax.random.key(seed + 10), task)
        np.testing.assert_array_equal(obs, [0.0, 0.0])
        np.testing.assert_array_equal(state.position, [0, 0])
        assert int(state.time) == 0


def test_grid_nav_goals_cover_all_21_candidates_uniformly():
    _, dist = jmeta.make("grid_nav")
    goals = np.asarray(_sample(dist, jax.random.key(0), 4200).goal)
    assert goals.dtype == np.int32
    cells = [tuple(g) for g in goals.tolist()]
    assert not set(cells) & set(EXCLUDED_GOALS)
    counts = {c: cells.count(c) for c in set(cells)}
    assert set(counts) == {tuple(c) for c in candidate_goals().tolist()}
    # 200 expected per cell; +-60 is more than 4 standard deviations.
    assert min(counts.values()) > 140 and max(counts.values()) < 260


# ---------------------------------------------------------------- bandit


def test_bandit_spec_and_variants():
    env, _ = jmeta.make("bandit")
    assert env.spec.action_space == Discrete(5)
    assert env.spec.horizon == 1 and env.spec.episodes_per_trial == 10
    assert env.spec.observation_space.shape == (1,)
    for k, n in itertools.product((5, 10, 50), (10, 100, 500)):
        name = "default" if (k, n) == (5, 10) else f"k{k}_n{n}"
        env, dist = jmeta.make("bandit", variant=name)
        assert env.spec.action_space.n == k and env.spec.episodes_per_trial == n
        assert dist.sample(jax.random.key(0)).probs.shape == (k,)
    env, _ = jmeta.make("bandit", num_arms=7, episodes_per_trial=3)
    assert env.spec.action_space.n == 7 and env.spec.episodes_per_trial == 3


def test_bandit_arm_means_uniform():
    _, dist = jmeta.make("bandit", variant="k10_n10")
    probs = np.asarray(_sample(dist, jax.random.key(0), 2000).probs)
    assert probs.min() >= 0.0 and probs.max() <= 1.0
    assert abs(probs.mean() - 0.5) < 0.01 and abs(probs.var() - 1 / 12) < 0.005


def test_bandit_reward_frequencies_match_probs():
    env, _ = jmeta.make("bandit")
    probs = np.array([0.05, 0.3, 0.5, 0.7, 0.95], np.float32)
    task = BanditTask(probs=jnp.asarray(probs))
    _, state = env.reset(jax.random.key(0), task)
    pulls = 4000
    keys = jax.random.split(jax.random.key(1), pulls)

    def pull_all(key):
        return jax.vmap(lambda a: env.step(key, state, a, task).reward)(jnp.arange(5))

    rewards = np.asarray(jax.jit(jax.vmap(pull_all))(keys))  # [pulls, arms]
    assert set(np.unique(rewards).tolist()) <= {0.0, 1.0}
    # Standard error <= 0.008; 0.035 is more than 4 of them.
    np.testing.assert_allclose(rewards.mean(axis=0), probs, atol=0.035)


def test_bandit_info_and_trial_regret():
    env, _ = jmeta.make("bandit")
    task = BanditTask(probs=jnp.array([0.2, 0.9, 0.4, 0.1, 0.6], jnp.float32))
    state = BanditState(time=jnp.zeros((), jnp.int32))
    actions = jnp.array([0, 1, 2, 3, 4, 1, 1, 4])
    regret_info, expected = [], []
    for a in actions:
        out = env.step(jax.random.key(0), state, a, task)
        assert bool(out.truncated) and not bool(out.terminated)  # an episode is one pull
        np.testing.assert_array_equal(out.obs, [1.0])
        regret_info.append(float(out.info["regret"]))
        expected.append(float(out.info["expected_reward"]))
    np.testing.assert_allclose(expected, [0.2, 0.9, 0.4, 0.1, 0.6, 0.9, 0.9, 0.6], atol=1e-6)
    np.testing.assert_allclose(regret_info, [0.7, 0.0, 0.5, 0.8, 0.3, 0.0, 0.0, 0.3], atol=1e-6)
    assert float(rp.bandit_trial_regret(task, actions)) == pytest.approx(sum(regret_info), abs=1e-5)
    assert float(rp.bandit_trial_expected_reward(task, actions)) == pytest.approx(sum(expected), abs=1e-5)
    # Batched, with the [K, T] action layout of a trial.
    batched = jax.vmap(rp.bandit_trial_regret)(
        BanditTask(probs=jnp.stack([task.probs, task.probs])), jnp.stack([actions[:, None], actions[:, None]])
    )
    np.testing.assert_allclose(batched, [sum(regret_info)] * 2, atol=1e-5)


def test_bandit_bad_input():
    with pytest.raises(ConfigError, match="num_arms"):
        jmeta.make("bandit", num_arms=1)
    with pytest.raises(ConfigError, match="episodes_per_trial"):
        jmeta.make("bandit", episodes_per_trial=0)
    with pytest.raises(UnknownNameError) as info:
        jmeta.make("bandit", variant="k7_n3")
    msg = str(info.value)
    assert "k7_n3" in msg and "default" in msg and "k50_n500" in msg
    with pytest.raises(ConfigError, match="num_arms"):
        jmeta.make("bandit", arms=3)  # unknown option: the message lists the valid ones


# ---------------------------------------------------------------- tabular_mdp


def test_tabular_mdp_spec_and_variants():
    env, _ = jmeta.make("tabular_mdp")
    assert env.spec.horizon == 10 and env.spec.episodes_per_trial == 10
    assert env.spec.action_space == Discrete(5) and env.spec.observation_space.shape == (10,)
    for n in (25, 50, 75, 100):
        env, _ = jmeta.make("tabular_mdp", variant=f"n{n}")
        assert env.spec.episodes_per_trial == n and env.spec.horizon == 10


def test_tabular_mdp_task_distribution():
    _, tasks = _tabular_tasks()
    P = np.asarray(tasks.transitions)
    mu = np.asarray(tasks.reward_means)
    assert P.shape == (400, 10, 5, 10) and mu.shape == (400, 10, 5)
    assert P.min() >= 0.0
    np.testing.assert_allclose(P.sum(-1), 1.0, atol=1e-5)
    # Dirichlet(1) over 10 states: each entry has mean 1/10 and variance 9/1100.
    assert abs(P.mean() - 0.1) < 1e-3 and abs(P.var() - 9 / 1100) < 5e-4
    # mu ~ N(1, 1) (20,000 draws).
    assert abs(mu.mean() - 1.0) < 0.03 and abs(mu.std() - 1.0) < 0.03


def test_tabular_mdp_one_hot_obs_and_start_state():
    env, tasks = _tabular_tasks()
    task = jax.tree_util.tree_map(lambda x: x[0], tasks)
    obs, state = env.reset(jax.random.key(0), task)
    np.testing.assert_array_equal(obs, np.eye(10, dtype=np.float32)[0])  # every episode starts in 0
    step = jax.jit(env.step)
    for t in range(12):
        out = step(jax.random.key(t), state, jnp.int32(t % 5), task)
        assert out.obs.shape == (10,) and out.obs.dtype == jnp.float32
        assert float(out.obs.sum()) == 1.0 and float(out.obs[int(out.state.state)]) == 1.0
        assert float(out.info["expected_reward"]) == pytest.approx(
            float(task.reward_means[int(state.state), t % 5]), abs=1e-6)
        assert not bool(out.terminated) and bool(out.truncated) == (t >= 9)
        state = out.state


def test_tabular_mdp_transitions_and_rewards_match_task():
    env, tasks = _tabular_tasks()
    task = jax.tree_util.tree_map(lambda x: x[1], tasks)
    s, a, samples = 3, 2, 20000
    state = TabularMDPState(state=jnp.int32(s), time=jnp.int32(0))
    keys = jax.random.split(jax.random.key(6), samples)
    out = jax.jit(jax.vmap(lambda k: env.step(k, state, jnp.int32(a), task)))(keys)
    freq = np.bincount(np.asarray(out.state.state), minlength=10) / samples
    # Standard error <= 0.0036; 0.015 is more than 4 of them.
    np.testing.assert_allclose(freq, np.asarray(task.transitions[s, a]), atol=0.015)
    rewards = np.asarray(out.reward)
    assert abs(rewards.mean() - float(task.reward_means[s, a])) < 0.03  # s.e. 0.007
    assert abs(rewards.std() - 1.0) < 0.03


def test_tabular_mdp_bad_input():
    with pytest.raises(ConfigError, match="num_states"):
        jmeta.make("tabular_mdp", num_states=1)
    with pytest.raises(ConfigError, match="num_actions"):
        jmeta.make("tabular_mdp", num_actions=0)
    with pytest.raises(UnknownNameError) as info:
        jmeta.make("tabular_mdp", variant="n7")
    assert all(v in str(info.value) for v in ("default", "n25", "n100", "n7"))


# ---------------------------------------------------------------- reference policies


def _all_goals(repeats=1):
    """Every candidate goal ``repeats`` times (exactly uniform over the goals)."""
    return GridNavTask(goal=jnp.asarray(np.tile(candidate_goals(), (repeats, 1))))


def test_grid_reference_policies_through_rollout_trial():
    env, _ = jmeta.make("grid_nav")
    repeats = 12
    tasks = _all_goals(repeats)  # 252 trials, 12 per goal
    analytic = np.tile([_oracle_return(g) for g in candidate_goals().tolist()], repeats)

    oracle, _ = rp.run_trials(env, rp.grid_oracle(), tasks, jax.random.key(0))
    oracle = np.asarray(oracle.episode_return())
    assert oracle.shape == (21 * repeats, 4)
    np.testing.assert_allclose(oracle, np.broadcast_to(analytic[:, None], oracle.shape), atol=1e-4)

    bayes, belief = rp.run_trials(env, rp.grid_bayes_search(), tasks, jax.random.key(1))
    returns = np.asarray(bayes.episode_return())
    found_in_first = np.asarray((bayes.reward[:, 0] > 0.5).any(-1))
    assert found_in_first.any() and not found_in_first.all()
    np.testing.assert_allclose(returns[found_in_first, 1:], oracle[found_in_first, 1:], atol=1e-4)
    # Every goal is found within the first two episodes, so episodes 3 and 4 are the oracle's.
    np.testing.assert_allclose(returns[:, 2:], oracle[:, 2:], atol=1e-4)
    assert np.all(returns <= oracle + 1e-4)
    # ... and the final belief is the point mass on the true goal.
    assert np.all(np.asarray(belief.goal_known))
    np.testing.assert_array_equal(belief.goal, tasks.goal)
    posterior = np.asarray(jax.vmap(rp.grid_posterior)(belief))
    np.testing.assert_allclose(posterior, np.tile(np.eye(21), (repeats, 1)), atol=0)

    random, _ = rp.run_trials(env, rp.uniform(5), tasks, jax.random.key(2))
    random = np.asarray(random.episode_return())
    assert np.all(returns.mean(0) > random.mean(0) + 3.0)  # Bayes search beats random every episode
    assert np.all(np.abs(random.mean(0) + 1.13) < 0.4)  # random stays near -1.1 per episode


def test_grid_bayes_search_rules_out_visited_cells():
    env, _ = jmeta.make("grid_nav")
    policy = rp.grid_bayes_search()
    task = _goal(4, 4)  # the farthest goal: not reached in the first episode
    run = jax.jit(lambda k: rollout_trial(env, policy, None, task, k, 1))
    trajectory, belief = run(jax.random.key(0))
    assert not bool(belief.goal_known)
    assert float(trajectory.reward.max()) < 0
    posterior = np.asarray(rp.grid_posterior(belief))
    assert posterior.sum() == pytest.approx(1.0)
    # The observations are the cells before each move; the last move's cell is in belief.position.
    # Every cell reached in the episode except the last one has been ruled out (posterior 0).
    reached = [tuple(int(v) for v in o) for o in np.asarray(trajectory.obs[0])[1:]]
    cands = [tuple(c) for c in candidate_goals().tolist()]
    ruled_out = {cands[i] for i in np.flatnonzero(np.asarray(belief.ruled_out))}
    assert ruled_out == set(reached) & set(cands)
    assert len(ruled_out) >= 8
    nonzero = posterior[posterior > 0]
    np.testing.assert_allclose(nonzero, 1.0 / (21 - len(ruled_out)), rtol=1e-6)


@pytest.mark.parametrize("name", ["greedy", "thompson", "ucb1"])
def test_bandit_policies_beat_random(name):
    env, dist = jmeta.make("bandit", variant="k5_n100")
    tasks = _sample(dist, jax.random.key(0), 500)
    policy = {"greedy": rp.bandit_greedy, "thompson": rp.bandit_thompson, "ucb1": rp.bandit_ucb1}[name](5)
    trajectory, carry = rp.run_trials(env, policy, tasks, jax.random.key(1))
    assert trajectory.action.shape == (500, 100, 1)
    regret = np.asarray(jax.vmap(rp.bandit_trial_regret)(tasks, trajectory.action))
    # Uniform random's expected regret, exactly: n (max p - mean p); about 33 for k = 5, n = 100.
    probs = np.asarray(tasks.probs)
    random_regret = 100 * (probs.max(1) - probs.mean(1))
    assert regret.mean() < 0.6 * random_regret.mean()
    # The sampled rewards agree with the expected ones.
    expected = np.asarray(jax.vmap(rp.bandit_trial_expected_reward)(tasks, trajectory.action))
    assert abs(np.asarray(trajectory.reward).sum((1, 2)).mean() - expected.mean()) < 1.0
    # The carry learnt from the RL² inputs: it saw every pull but the last one (whose outcome
    # would arrive with the next input). prev_done is 0 only at the trial's first step.
    actions = np.asarray(trajectory.action[:, :, 0])
    rewards = np.asarray(trajectory.reward[:, :, 0])
    counts = np.stack([np.bincount(a[:-1], minlength=5) for a in actions])
    successes = np.stack([np.bincount(a[:-1], weights=r[:-1], minlength=5) for a, r in zip(actions, rewards, strict=True)])
    np.testing.assert_array_equal(carry.counts, counts)
    np.testing.assert_array_equal(carry.successes, successes)
    np.testing.assert_array_equal(carry.t, 100)
    prev_done = np.asarray(trajectory.extras["prev_done"][:, :, 0])
    assert np.all(prev_done[:, 0] == 0) and np.all(prev_done[:, 1:] == 1)
    if name != "thompson":  # greedy and UCB1 first pull every arm once, in order
        np.testing.assert_array_equal(actions[:, :5], np.tile(np.arange(5), (500, 1)))

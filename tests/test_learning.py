"""Learning tests: MAML and the gradient-based family meta-trained on point_nav adapt on held-out
tasks; MAESN explores a sparse-reward point_nav better than MAML; RL² on grid_nav and bandits
exploits what it learned earlier in the trial; PEARL infers the goal of oyster's point robot from
its first episode; VariBAD and task inference search grid_nav and go back to the goal their belief
holds, measured against the exact-posterior search; DREAM's exploration episode finds out which box
is the goal on the small maze and its execution episode goes there, where E-RL² stays a guesser.

These tests compile the trainer's meta-iterations and evaluations with XLA's optimisations on
(``JMETA_HOT_PATH_OPT_LEVEL=3``, set by the conftest for tests marked ``slow``); the numbers
quoted below were measured that way unless they say otherwise.

MAML: fixed seed 0 in the default suite, seed 1 in the extended tier (`-m extended`), 40 held-out tasks (the standard evaluation bank), 20 episodes per adaptation step.
Meta-training uses 2 inner steps so that the 2-step return is what is optimised (the MAML
paper trained with 1 step for 100+ iterations and still improved at step 2: -40.4, -11.7, -3.3;
this test has a CPU budget of ~12 iterations).

Asserted margins (measured at this budget: seed 0 -37.9, -17.3, -10.5; seed 1 -37.4, -17.5, -10.7):
  * return after 1 step >= return before adaptation + 10;
  * return after 2 steps >= return after 1 step + 2;
  * the meta-learned initialisation adapts far better than the untrained one (+10 after 1 step).
"""

from __future__ import annotations

import dataclasses

import pytest

from jmeta.algos.maml import MAMLConfig
from jmeta.config import TrainConfig
from jmeta.evaluation import evaluate
from jmeta.tasks import TaskBank
from jmeta.trainer import build, train


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.extended)])  # seed 1 measured -37.4, -17.5, -10.7
def test_maml_learns_to_adapt_on_point_nav(tmp_path, seed):
    maml = MAMLConfig(episodes_per_task=10, num_inner_steps=2, eval_adapt_steps=2, eval_episodes_per_task=20)
    config = TrainConfig(
        algo="maml", env="point_nav", seed=seed, meta_iters=12, meta_batch_size=20, chunk_size=12,
        eval_every=0, eval_tasks=40, checkpoint_every=100, logdir=str(tmp_path), progress=False,
        tensorboard=False, plots=False, report=False, algo_config=maml,
    )
    result = train(config)
    trained = result.final_eval
    assert trained.num_tasks == 40
    before, after1, after2 = trained.mean
    print(f"meta-trained: {trained.mean.round(1)} +- {trained.stderr.round(1)}")
    assert after1 >= before + 10.0, trained.table()
    assert after2 >= after1 + 2.0, trained.table()

    # The same adaptation from the untrained initialisation is much worse: meta-learning happened.
    _, dist, algo = build(config)
    import jax

    untrained = evaluate(algo, algo.init(jax.random.split(jax.random.key(config.seed))[0]), TaskBank.for_evaluation(dist, 40))
    print(f"untrained:    {untrained.mean.round(1)}")
    assert after1 >= untrained.mean[1] + 10.0, (trained.table(), untrained.table())


# ---------------------------------------------------------------- the gradient-based family

#: Measured on this 2-core CPU (returns after 0 / 1 / 2 steps on the 40 held-out tasks; untrained
#: initialisation: seed 0 -69.6 / -66.4 / -66.3, seed 1 -71.9 / -69.4 / -69.0):
#:   fomaml, 12 iterations (the MAML test's budget): seed 0 -39.0 / -23.8 / -24.0; seed 1 -37.9 / -23.5 / -26.9.
#:   metasgd, 12 iterations: seed 0 -40.5 / -18.7 / -11.4; seed 1 -38.3 / -16.3 / -11.1.
#:   emaml, 12 iterations: seed 0 -39.4 / -19.9 / -10.7; seed 1 -37.8 / -17.8 / -10.4.
#:   cavia (2 context parameters, inner lr 1.0), 12 iterations: seed 0 -41.0 / -21.8 / -14.9 (untrained
#:   -69.5 / -69.7: a context at the untrained weights changes little); seed 1 -39.5 / -18.2 / -12.8.
#:   promp ((64, 64) tanh policy: untrained seed 0 -128.0 / -116.0, seed 1 -165.2 / -152.8): at 12
#:   iterations seed 0 -40.0 / -29.6 / -23.1 (+10.4, too close to the threshold); at 25 iterations
#:   (28 s, its Adam steps are cheaper than TRPO) seed 0 -37.3 / -19.7 / -10.7, seed 1 -37.6 / -20.5 / -13.1.
#:   reptile, 3 inner steps: at 12 iterations only -53.3 / -50.9 / -49.1 (+2.4 after one step: its
#:   meta-iterations are cheap but it needs many more of them); at 100 iterations (27 s, less
#:   wall-clock than the MAML test) seed 0 -38.7 / -29.0 / -22.3, seed 1 -38.8 / -29.5 / -22.6.
#: Asserted (issue 13's thresholds): one step gains >= 10 (cavia, metasgd, emaml, promp) or >= 5 (fomaml, reptile), and
#: the adapted return beats the untrained initialisation's by >= 10.
GRADIENT_FAMILY = [("fomaml", 12, 2, 5.0), ("metasgd", 12, 2, 10.0), ("cavia", 12, 2, 10.0), ("emaml", 12, 2, 10.0), ("promp", 25, 2, 10.0),
                   ("reptile", 100, 3, 5.0)]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.extended)])
@pytest.mark.parametrize(("algo", "iters", "inner_steps", "gain"), GRADIENT_FAMILY, ids=[a for a, *_ in GRADIENT_FAMILY])
def test_gradient_family_learns_to_adapt_on_point_nav(tmp_path, algo, iters, inner_steps, gain, seed):
    import jax

    from jmeta.algos import algorithm_class

    cfg = algorithm_class(algo).Config(episodes_per_task=10, num_inner_steps=inner_steps, eval_adapt_steps=2,
                                       eval_episodes_per_task=20)
    config = TrainConfig(
        algo=algo, env="point_nav", seed=seed, meta_iters=iters, meta_batch_size=20, chunk_size=iters,
        eval_every=0, eval_tasks=40, checkpoint_every=1000, logdir=str(tmp_path), progress=False,
        tensorboard=False, plots=False, report=False, algo_config=cfg,
    )
    trained = train(config).final_eval
    before, after1, _ = trained.mean
    print(f"{algo} meta-trained: {trained.mean.round(1)} +- {trained.stderr.round(1)}")
    assert after1 >= before + gain, trained.table()
    _, dist, learner = build(config)
    untrained = evaluate(learner, learner.init(jax.random.split(jax.random.key(seed))[0]), TaskBank.for_evaluation(dist, 40))
    assert after1 >= untrained.mean[1] + 10.0, (trained.table(), untrained.table())


# ---------------------------------------------------------------- MAESN: exploration for sparse rewards


def _sparse_semicircle_config(tmp_path, algo, seed):
    from jmeta.algos import algorithm_class

    cfg = algorithm_class(algo).Config(episodes_per_task=10, eval_adapt_steps=3, eval_episodes_per_task=20)
    return TrainConfig(
        algo=algo, env="point_nav", env_variant="semicircle", eval_env_set=("sparse=true",), seed=seed,
        meta_iters=100, meta_batch_size=10, chunk_size=100, eval_every=0, eval_tasks=40, checkpoint_every=1000,
        logdir=str(tmp_path / algo), progress=False, tensorboard=False, plots=False, report=False, algo_config=cfg,
    )


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.extended)])
def test_maesn_explores_better_than_maml_on_sparse_point_nav(tmp_path, seed):
    """MAESN's protocol on point_nav's semicircle goals: meta-train on the dense reward, meta-test on 40
    held-out goals with the sparse reward (1 - d within 0.2 of the goal, else 0), 3 latent VPG steps
    of 20 episodes. Same budget for MAESN and MAML: 100 iterations x 10 tasks x 10 episodes.

    Success = the fraction of episodes that reach the goal region. Measured after 0 / 1 / 2 / 3 steps
    (this suite's XLA flags): MAESN seed 0 0.263 / 0.353 / 0.406 / 0.448, untrained MAESN 0.181 / 0.210
    / 0.218 / 0.263, MAML 0.0 at every step (it learned to stop between the goals, >= 0.36 from each,
    and an all-zero sparse reward gives it no gradient; untrained MAML 0.141 -> 0.215). With XLA's
    default optimisations: seed 0 MAESN 0.251 -> 0.480, seed 1 0.149 -> 0.358 (untrained 0.096 ->
    0.143). Asserted after 3 steps: MAESN >= MAML + 0.2 and MAESN >= its untrained initialisation + 0.1.
    """
    import jax

    from jmeta.trainer import build_meta_test

    success = {}
    for algo in ("maesn", "maml"):
        config = _sparse_semicircle_config(tmp_path, algo, seed)
        result = train(config)
        success[algo] = result.final_eval.extras["success"].mean(axis=0)
        if algo == "maesn":
            _, dist, learner = build(config)
            meta_test, bank = build_meta_test(config, learner, dist)
            untrained = evaluate(meta_test, learner.init(jax.random.split(jax.random.key(seed))[0]), bank)
            success["untrained"] = untrained.extras["success"].mean(axis=0)
    print(f"seed {seed}: success", {k: v.round(3) for k, v in success.items()})
    assert success["maesn"][-1] >= success["maml"][-1] + 0.2, success
    assert success["maesn"][-1] >= success["untrained"][-1] + 0.1, success


# ---------------------------------------------------------------- RL²


def _rl2_config(tmp_path, env, seed, meta_iters, meta_batch_size, rl2, **overrides):
    from jmeta.algos.rl2 import RL2Config

    return TrainConfig(
        algo="rl2", env=env, seed=seed, meta_iters=meta_iters, meta_batch_size=meta_batch_size,
        chunk_size=meta_iters, eval_every=0, eval_tasks=40, checkpoint_every=1000, logdir=str(tmp_path),
        progress=False, tensorboard=False, plots=False, report=False, algo_config=RL2Config(**rl2), **overrides,
    )


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.extended)])  # seed 1: the extended tier
def test_rl2_learns_to_exploit_in_later_episodes_on_grid_nav(tmp_path, seed):
    """RL² on GridNavi (4 x 15-step episodes), 40 held-out goals, 4 trials each.

    Asserted: the second episode beats the first by >= 1.0 (the agent goes back to the goal it
    found); every episode beats the uniform-random policy by >= 2.0; and the trained agent is
    compared with the exact-posterior search reference (printed, not asserted: a reference, not a
    bound). Measured at this budget (150 iterations x 64 tasks, 576k env steps), per episode:
    seed 0 [2.97, 7.43, 6.96, 7.09], seed 1 [2.53, 6.85, 8.13, 8.10]; uniform random about -1.2;
    exact-posterior search [4.41, 10.82, 11.32, 11.32]; oracle 11.32.
    """
    import jax

    from jmeta.baselines import toy as rp

    config = _rl2_config(tmp_path, "grid_nav", seed, 150, 64,
                         {"hidden_size": 128, "lr": 1e-3, "num_minibatches": 4, "ppo_epochs": 4})
    result = train(config)
    rl2 = result.final_eval.mean
    env, dist, _ = build(config)
    bank = TaskBank.for_evaluation(dist, 40)
    per_policy = {}
    for policy in (rp.uniform(5), rp.grid_bayes_search(), rp.grid_oracle()):
        traj, _ = rp.run_trials(env, policy, bank.tasks, jax.random.key(seed))
        per_policy[policy.name] = traj.episode_return().mean(axis=0)
    print(f"seed {seed}: rl2 {rl2.round(2)}", {k: v.round(2) for k, v in per_policy.items()})
    random = per_policy["uniform"]
    assert rl2[1] >= rl2[0] + 1.0, result.final_eval.table()
    assert (rl2 >= random + 2.0).all(), (rl2, random)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.extended)])  # seed 1: the extended tier
def test_rl2_bandit_regret_below_random_and_greedy(tmp_path, seed):
    """RL² on 5-armed Bernoulli bandits with 10 pulls per trial (RL²'s smallest setting).

    Expected regret sum_t max(p) - p[a_t] over 1000 held-out bandits. References on the same
    bandits: uniform random 3.3, greedy (each arm once, then the best empirical mean) 2.4,
    Thompson sampling 2.5. Asserted: RL² regret
    <= random - 1.0 and <= greedy - 0.2. Measured at this budget (300 iterations x 128 tasks,
    384k pulls): seed 0 1.96, seed 1 2.05 (greedy 2.42, random 3.41, Thompson 2.51).
    """
    import jax

    from jmeta.baselines import toy as rp
    from jmeta.tasks import sample_tasks

    config = _rl2_config(tmp_path, "bandit", seed, 300, 128,
                         {"hidden_size": 64, "embed_sizes": (32,), "head_sizes": (32,), "lr": 1e-3})
    result = train(config)
    env, dist, algo = build(config)
    tasks = sample_tasks(dist, jax.random.key(123), 1000)
    traj = jax.jit(lambda p: algo.collect(p, tasks, jax.random.key(5), 1, algo.episodes_per_trial))(result.state.params)
    regret = {"rl2": float(jax.vmap(rp.bandit_trial_regret)(tasks, traj.action[:, 0]).mean())}
    for policy in (rp.uniform(5), rp.bandit_greedy(5), rp.bandit_thompson(5)):
        ref, _ = rp.run_trials(env, policy, tasks, jax.random.key(6))
        regret[policy.name] = float(jax.vmap(rp.bandit_trial_regret)(tasks, ref.action).mean())
    print(f"seed {seed}: expected regret", {k: round(v, 3) for k, v in regret.items()})
    assert regret["rl2"] <= regret["uniform"] - 1.0, regret
    assert regret["rl2"] <= regret["greedy"] - 0.2, regret


# ---------------------------------------------------------------- PEARL


def _pearl_point_config(tmp_path, seed, **algo):
    from jmeta.algos.pearl import PEARLConfig

    cfg = PEARLConfig(hidden_sizes=(64, 64), encoder_sizes=(64, 64), reward_scale=5.0, policy_lr=1e-3, qf_lr=1e-3,
                      vf_lr=1e-3, context_lr=1e-3, num_initial_steps=200, num_steps_prior=200,
                      num_extra_rl_steps_posterior=200, num_train_steps_per_itr=200, batch_size=64,
                      embedding_batch_size=64, replay_capacity=10_000, **algo)
    return TrainConfig(algo="pearl", env="point_nav", env_variant="pearl", seed=seed, meta_iters=100,
                       meta_batch_size=8, chunk_size=100, eval_every=0, eval_tasks=20, checkpoint_every=1000,
                       logdir=str(tmp_path), progress=False, tensorboard=False, plots=False, report=False, algo_config=cfg)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.extended)])
def test_pearl_infers_the_goal_on_point_nav(tmp_path, seed):
    """PEARL on oyster's point robot (``point_nav`` variant ``pearl``): the 20 held-out goals, 3
    deterministic episodes per trial, the first with a prior z, the next ones with z from the
    posterior of the trial's transitions so far. CPU budget: 100 iterations x 200 SAC steps (8 tasks
    x 64 transitions), (64, 64) networks, reward scale 5, Adam 1e-3 (oyster: 500 x 1000 steps, 3 x
    300 networks, reward scale 100, 3e-4; at this budget those settings had not started to learn).

    Measured: seed 0 episodes -17.45 / -14.50 / -11.68; the oracle that knows the goal (straight at
    it at full speed) -5.36. Asserted: the third episode beats the first (prior z) by >= 3, and
    closes >= 25% of the gap between the first episode and the oracle (measured +5.8, 48%).
    """
    import jax

    import jmeta
    from jmeta.baselines import toy as rp

    config = _pearl_point_config(tmp_path, seed)
    result = train(config)
    episodes = result.final_eval.mean
    env, dist = jmeta.make("point_nav", "pearl")
    oracle_traj, _ = rp.run_trials(env, rp.point_oracle(), dist.held_out.tasks, jax.random.key(seed))
    oracle = float(oracle_traj.episode_return().mean(axis=0)[0])
    print(f"seed {seed}: pearl per episode {episodes.round(2)}, oracle {oracle:.2f}")
    assert episodes[2] >= episodes[0] + 3.0, result.final_eval.table()
    assert (episodes[2] - episodes[0]) >= 0.25 * (oracle - episodes[0]), (episodes, oracle)


def _belief_config(tmp_path, algo, seed, meta_iters):
    """The algorithm's grid_nav preset (VariBAD's GridNavi config scaled for CPU: 16 trials per
    iteration, 20 ELBO terms x 20 decodes, PPO 4 x 4) for ``meta_iters`` iterations."""
    from jmeta.config import preset_config

    base = preset_config(algo, "grid_nav")
    return dataclasses.replace(base, seed=seed, meta_iters=meta_iters, chunk_size=meta_iters // 4, eval_every=0,
                               eval_tasks=40, checkpoint_every=10_000, logdir=str(tmp_path), progress=False,
                               tensorboard=False, plots=False, report=False)


def _grid_references(config, seed):
    import jax

    from jmeta.baselines import toy as rp

    env, dist, _ = build(config)
    bank = TaskBank.for_evaluation(dist, 40)
    out = {}
    for policy in (rp.uniform(5), rp.grid_bayes_search()):
        traj, _ = rp.run_trials(env, policy, bank.tasks, jax.random.key(seed))
        out[policy.name] = traj.episode_return().mean(axis=0)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.extended)])
def test_varibad_searches_then_exploits_near_the_bayes_optimal_search_on_grid_nav(tmp_path, seed):
    """VariBAD on GridNavi, 40 held-out goals, 4 trials each, against the exact-posterior search
    (``grid_bayes_search``: 4.41 / 10.82 / 11.31 / 11.31) and uniform random (about -1.1).

    Budget: 1000 iterations x 16 trials (960k env steps; the preset runs 2,000). Measured: seed 0
    [3.48, 6.92, 8.59, 7.89], seed 1 [4.96, 9.63, 10.46, 10.52] (87 s for seed 0 on one core). Asserted: the first episode (the search) is
    within 2.0 of the exact-posterior search's; the second beats the first by >= 2.0 (the agent goes
    back to the goal its belief holds); every episode after the first closes >= 50% of the gap
    between uniform random and the exact-posterior search; every episode beats random by >= 3.0.
    """
    config = _belief_config(tmp_path, "varibad", seed, 1000)
    result = train(config)
    episodes = result.final_eval.mean
    refs = _grid_references(config, seed)
    bayes, random = refs["bayes_search"], refs["uniform"]
    print(f"seed {seed}: varibad {episodes.round(2)}, bayes {bayes.round(2)}, random {random.round(2)}")
    assert episodes[0] >= bayes[0] - 2.0, result.final_eval.table()
    assert episodes[1] >= episodes[0] + 2.0, result.final_eval.table()
    assert ((episodes[1:] - random[1:]) >= 0.5 * (bayes[1:] - random[1:])).all(), (episodes, bayes, random)
    assert (episodes >= random + 3.0).all(), (episodes, random)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.extended)])
def test_task_inference_belief_finds_and_keeps_the_goal_on_grid_nav(tmp_path, seed):
    """Task inference (the belief trained to predict the goal cell) on GridNavi, 40 held-out goals, 4
    trials each, against uniform random (about -1.1) and the exact-posterior search.

    Budget: 600 iterations x 16 trials (576k env steps). Measured: seed 0 [4.01, 10.39, 10.67, 11.07],
    seed 1 [4.25, 7.00, 8.62, 9.61] (at 400 iterations seed 0 gave [4.24, 6.18, 6.96, 7.40], short
    of the first margin: the budget was raised, the margins were not changed). Asserted: the
    second episode beats the first by >= 2.0 and the last by >= 3.0 (returns improve across the
    trial); every episode after the first closes >= 50% of the gap between uniform random and the
    exact-posterior search.
    """
    config = _belief_config(tmp_path, "task_inference", seed, 600)
    result = train(config)
    episodes = result.final_eval.mean
    refs = _grid_references(config, seed)
    bayes, random = refs["bayes_search"], refs["uniform"]
    print(f"seed {seed}: task_inference {episodes.round(2)}, bayes {bayes.round(2)}, random {random.round(2)}")
    assert episodes[1] >= episodes[0] + 2.0, result.final_eval.table()
    assert episodes[-1] >= episodes[0] + 3.0, result.final_eval.table()
    assert ((episodes[1:] - random[1:]) >= 0.5 * (bayes[1:] - random[1:])).all(), (episodes, bayes, random)


# ---------------------------------------------------------------- DREAM against E-RL² on the small maze


def _maze_config(tmp_path, algo, seed, meta_iters):
    """The algorithm's maze2d:small preset (32 tasks x 2 episodes x 50 steps per iteration) for ``meta_iters``,
    evaluated with the mode of the policies (DREAM's test protocol: epsilon 0, for DREAM and its E-RL²)."""
    from jmeta.config import preset_config

    base = preset_config(algo, "maze2d", "small")
    base = dataclasses.replace(base, algo_config=dataclasses.replace(base.algo_config, eval_deterministic=True))
    return dataclasses.replace(base, seed=seed, meta_iters=meta_iters, chunk_size=meta_iters // 4, eval_every=0,
                               eval_tasks=40, checkpoint_every=10_000, logdir=str(tmp_path / algo), progress=False,
                               tensorboard=False, plots=False, report=False)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.extended)])
def test_dream_explores_for_information_and_beats_erl2_on_the_small_maze(tmp_path, seed):
    """DREAM on maze2d's small layout, 40 held-out tasks x 4 trials: one exploration episode, then the
    execution episode on the decoded embedding. The scripted guesser succeeds in 50% of episodes, the
    informed explorer in 100% (tests/test_dream.py).

    Budget: 200 iterations x 32 tasks x (50 + 50) steps (640k env steps) for both DREAM and E-RL²
    (E-RL²: 2-episode trials, the first episode's rewards observed but not optimised), each with its
    maze2d:small preset (the same execution entropy bonus, 0.03), both evaluated with the mode of
    their policies (DREAM's test protocol, epsilon 0). Measured (this test): seed 0 DREAM execution
    success 1.000, E-RL² 0.000; seed 1 DREAM 1.000, E-RL² 0.000 (94 s each on one core). Sampling
    the actions instead: DREAM 0.931 / 0.925, E-RL² 0.012 / 0.000 (at 300 iterations 0.938 / 0.975).
    DREAM's exploration policy touches the red box (success 0.525 there): its +1 / -1 tells the
    decoder which box is the goal. Asserted: DREAM's execution success >= 0.9, and >= E-RL²'s
    second-episode success + 0.2.
    """
    dream = train(_maze_config(tmp_path, "dream", seed, 200)).final_eval
    erl2 = train(_maze_config(tmp_path, "erl2", seed, 200)).final_eval
    dream_success, erl2_success = dream.extras["success"].mean(axis=0), erl2.extras["success"].mean(axis=0)
    print(f"seed {seed}: dream returns {dream.mean.round(3)} success {dream_success.round(3)}; "
          f"erl2 returns {erl2.mean.round(3)} success {erl2_success.round(3)}")
    assert dream_success[1] >= 0.9, dream.table()
    assert dream_success[1] >= erl2_success[1] + 0.2, (dream.table(), erl2.table())

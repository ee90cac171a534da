"""DREAM and its parts (jmeta.algos.dream, jmeta.networks.task_embedding, following ezliu/dream),
E-RL² (jmeta.algos.rl2.ERL2), the pixel encoder (jmeta.networks.cnn) and the small maze layout."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jmeta
from jmeta.algos import make_algorithm
from jmeta.algos.dream import TINY, DreamConfig, append_embedding
from jmeta.algos.rl2 import ERL2_TINY
from jmeta.algos.rl2 import TINY as RL2_TINY
from jmeta.envs.wrappers import RescaleActions
from jmeta.errors import ConfigError
from jmeta.networks.cnn import PixelEncoder, conv_output_size, image_shape
from jmeta.networks.recurrent import RecurrentActorCritic
from jmeta.networks.task_embedding import (
    TrajectoryEmbedder,
    bottleneck_penalty,
    decoder_loss,
    information_gain,
    squared_distances,
)
from jmeta.spaces import Discrete
from jmeta.tasks import sample_tasks
from jmeta.types import StepInputs

# ---------------------------------------------------------------- exploration reward and losses


def test_information_gain_telescopes_to_the_distance_drop_minus_the_penalty():
    distances = jnp.array([[4.0, 3.0, 1.0, 1.0, 0.5]])
    mask = jnp.array([[1.0, 1.0, 1.0, 0.0]])  # the last step did not happen
    rewards = information_gain(distances, mask, 0.1)
    np.testing.assert_allclose(rewards, [[0.9, 1.9, -0.1, 0.0]], rtol=1e-6)
    # Over the valid steps: d_0 - d_len - c * len.
    np.testing.assert_allclose(rewards.sum(), 4.0 - 1.0 - 0.3, rtol=1e-6)


def test_bottleneck_penalty_has_no_gradient_below_the_cutoff():
    small = jnp.array([[1.0, 1.0]])  # ||f||^2 = 2 < 10
    large = jnp.array([[3.0, 2.0]])  # 13 > 10
    assert float(bottleneck_penalty(small, 10.0)) == 10.0
    np.testing.assert_allclose(jax.grad(lambda f: bottleneck_penalty(f, 10.0))(small), 0.0)
    np.testing.assert_allclose(jax.grad(lambda f: bottleneck_penalty(f, 10.0))(large), 2 * large)


def test_decoder_loss_averages_every_valid_prefix_including_the_empty_one():
    distances = jnp.array([[2.0, 4.0, 6.0, 100.0]])
    mask = jnp.array([[1.0, 1.0, 0.0]])
    np.testing.assert_allclose(decoder_loss(distances, mask), 4.0)  # (2 + 4 + 6) / 3


def _episode(key, length=6, obs_size=3):
    k1, k2, k3 = jax.random.split(key, 3)
    return (jax.random.normal(k1, (length, obs_size)), jax.random.randint(k2, (length,), 0, 3),
            jax.random.normal(k3, (length, obs_size)), jnp.zeros((length,)))


def test_trajectory_embedder_starts_from_the_same_prediction_and_holds_it_on_masked_steps():
    g = TrajectoryEmbedder(Discrete(3), embed_size=4, hidden_size=8, state_embed=4, action_embed=2)
    params = g.init(jax.random.key(0), 3)
    obs, action, next_obs, reward = _episode(jax.random.key(1))
    mask = jnp.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    contexts = g.contexts(params, obs, action, next_obs, reward, mask)
    assert contexts.shape == (7, 4)
    other = g.contexts(params, *_episode(jax.random.key(2)), jnp.ones(6))
    np.testing.assert_allclose(contexts[0], other[0])  # no transition seen yet: the same for every episode
    assert not np.allclose(contexts[1], other[1])
    for t in (4, 5, 6):  # steps after the end repeat the last prediction
        np.testing.assert_allclose(contexts[t], contexts[3])
    # Only the valid prefix matters.
    changed = g.contexts(params, obs, action, next_obs.at[4:].set(9.0), reward, mask)
    np.testing.assert_allclose(changed, contexts, rtol=1e-6)


def test_squared_distances_shape_and_value():
    contexts = jnp.zeros((2, 3, 4)).at[1, 2].set(1.0)
    d = squared_distances(contexts, jnp.zeros((2, 4)))
    assert d.shape == (2, 3)
    np.testing.assert_allclose(d[1], [0.0, 0.0, 4.0])


# ---------------------------------------------------------------- the algorithm


def _dream(env="maze2d", variant="small", batch=4, horizon=None, **overrides):
    env_obj, dist = jmeta.make(env, variant=variant, **({"horizon": horizon} if horizon else {}))
    return make_algorithm("dream", env_obj, dist, dataclasses.replace(TINY, **overrides), batch)


def test_meta_step_trains_all_four_networks_and_reports_both_policies():
    learner = _dream(horizon=12)
    state = learner.init(jax.random.key(0))
    assert set(state.params) == {"explore", "exec", "task_id", "decoder"}
    new, metrics = jax.jit(learner.meta_step)(state, jax.random.key(1))
    for name in state.params:  # every network moved
        before, after = jax.tree_util.tree_leaves(state.params[name]), jax.tree_util.tree_leaves(new.params[name])
        assert any(not np.allclose(a, b) for a, b in zip(before, after, strict=True)), name
    for name in ("train/return_exec", "train/return_exec_task_id", "train/return_exec_decoded", "train/info_gain",
                 "train/decoder_loss", "train/id_norm_sq", "train/explore_length"):
        assert np.isfinite(float(metrics[name])), name
    assert learner.env_steps_per_iteration() == 4 * 2 * 12


def test_info_gain_reward_reaches_the_exploration_policy_only_through_the_decoder():
    """The exploration episode's env reward is not optimised: the info-gain rewards equal the
    decoder's distance drops, whatever the env paid."""
    learner = _dream(horizon=12, penalty=0.0)
    state = learner.init(jax.random.key(0))
    tasks = sample_tasks(learner.task_dist, jax.random.key(2), 4)
    traj = learner.explore(state.params["explore"], tasks, jax.random.key(3))
    contexts = learner.decode(state.params["decoder"], traj)
    f = learner.task_id(state.params["task_id"], learner._features(tasks))
    d = squared_distances(contexts, f)
    rewards = information_gain(d, traj.mask[:, 0], 0.0)
    np.testing.assert_allclose(rewards.sum(-1), d[:, 0] - d[:, -1], rtol=1e-4, atol=1e-5)


def test_exec_policy_depends_on_the_embedding():
    learner = _dream(horizon=6)
    state = learner.init(jax.random.key(0))
    net = learner.exec_net
    obs = jnp.zeros(learner.env.spec.observation_space.shape)
    inputs = StepInputs(obs, jnp.array(-1), jnp.zeros(()), jnp.zeros(()))
    logits = [net.step(state.params["exec"], net.initial_carry(), inputs.replace(obs=append_embedding(obs, z)))[1]
              .logits for z in (jnp.zeros(8), jnp.ones(8) * 3)]
    assert not np.allclose(logits[0], logits[1])


def test_replays_reproduce_the_behaviour_log_probs_of_both_policies():
    """PPO's ratios start at 1: replaying the recorded episodes (the execution one with its z appended
    to every observation) gives the log-probabilities the policies acted with."""
    learner = _dream(horizon=10)
    state = learner.init(jax.random.key(0))
    tasks = sample_tasks(learner.task_dist, jax.random.key(2), 4)
    explore = learner.explore(state.params["explore"], tasks, jax.random.key(3))
    lp, _, _ = jax.vmap(lambda t: learner.explore_net.unroll(state.params["explore"], t))(explore)
    np.testing.assert_allclose(lp * explore.mask, explore.log_prob * explore.mask, rtol=1e-5, atol=1e-5)
    z = jax.random.normal(jax.random.key(4), (4, TINY.embed_size))
    execute = learner.execute(state.params["exec"], z, tasks, jax.random.key(5))
    lp, _, _ = jax.vmap(lambda t, zz: learner._exec_unroll(state.params["exec"], t, zz))(execute, z)
    np.testing.assert_allclose(lp * execute.mask, execute.log_prob * execute.mask, rtol=1e-5, atol=1e-5)
    assert "Dense_1" in state.params["exec"]["core"]  # z's own embedding layer beside the observation's


def test_evaluate_reports_exploration_and_execution_with_success():
    learner = _dream(horizon=10)
    state = learner.init(jax.random.key(0))
    tasks = sample_tasks(learner.task_dist, jax.random.key(5), 3)
    out = jax.jit(learner.evaluate)(state, tasks, jax.random.key(6))
    assert out.axis == "episode" and out.returns.shape == (3, 2)
    assert out.extras["success"].shape == (3, 2) and out.extras["exec_return_task_id"].shape == (3,)
    assert np.all((out.extras["success"] >= 0) & (out.extras["success"] <= 1))


def _small_pixel_env():
    """maze3d's small layout at 32 x 32 pixels, 3 steps: the pixel path at a test's cost."""
    return jmeta.make("maze3d", variant="small", horizon=3, image_width=32, image_height=32)


@pytest.mark.extended  # about 35 s of compiling; the pixel paths it uses are covered by the RL² and VariBAD tests
def test_dream_runs_on_pixels_with_the_convolutional_encoder():
    env, dist = _small_pixel_env()
    learner = make_algorithm("dream", env, dist, TINY, 2)
    assert learner.decoder.image_shape == (32, 32, 3) and learner.exec_net.image_shape == (32, 32, 3)
    state = learner.init(jax.random.key(0))
    assert "pixels" in state.params["exec"]["core"] and "pixels" in state.params["decoder"]["transition"]
    state, metrics = jax.jit(learner.meta_step)(state, jax.random.key(1))
    assert np.isfinite(float(metrics["train/decoder_loss"]))


@pytest.mark.parametrize(("overrides", "message"), [
    ({"lr": float("nan")}, "dream.lr"),
    ({"decoded_fraction": 1.5}, "dream.decoded_fraction"),
    ({"penalty": -0.1}, "dream.penalty"),
    ({"id_noise_std": float("inf")}, "dream.id_noise_std"),
    ({"embed_size": 0}, "dream.embed_size"),
    ({"num_minibatches": 3}, "dream.num_minibatches"),
])
def test_invalid_dream_settings_are_rejected(overrides, message):
    with pytest.raises(ConfigError, match=message):
        _dream(**overrides)


def test_decoded_fraction_sets_how_many_execution_episodes_use_the_decoder():
    assert _dream(batch=8, decoded_fraction=0.25).num_decoded == 2
    assert _dream(batch=8, decoded_fraction=0.0).num_decoded == 0
    learner = _dream(batch=4, decoded_fraction=1.0, horizon=5)
    _, metrics = jax.jit(learner.meta_step)(learner.init(jax.random.key(0)), jax.random.key(1))
    assert "train/return_exec_task_id" not in metrics and "train/return_exec_decoded" in metrics


def test_dream_config_defaults_follow_the_authors():
    c = DreamConfig()
    assert (c.embed_size, c.id_noise_std, c.id_norm_cutoff, c.penalty, c.gamma) == (64, 0.1, 10.0, 0.1, 0.99)


# ---------------------------------------------------------------- E-RL²


def test_erl2_does_not_optimise_the_first_episode():
    env, dist = jmeta.make("maze2d", variant="small", horizon=6, episodes_per_trial=2)
    erl2 = make_algorithm("erl2", env, dist, ERL2_TINY, 2)
    rl2 = make_algorithm("rl2", env, dist, RL2_TINY, 2)
    state = rl2.init(jax.random.key(0))
    trials = rl2.collect(state.params, sample_tasks(dist, jax.random.key(1), 2), jax.random.key(2), 1, 2)
    trials = jax.tree_util.tree_map(lambda x: x[:, 0], trials)
    trials = trials.replace(reward=jnp.ones_like(trials.reward) * trials.mask)  # rewards everywhere
    with_first = rl2.trial_batch(state.params, trials)
    without = erl2.trial_batch(state.params, trials)
    # E-RL²'s targets ignore episode 0's rewards: its episode-1 advantages equal RL²'s, episode 0's differ.
    np.testing.assert_allclose(without.advantages[:, 1], with_first.advantages[:, 1], rtol=1e-5, atol=1e-6)
    assert not np.allclose(without.advantages[:, 0], with_first.advantages[:, 0])


def test_dream_and_erl2_refuse_continuous_actions():
    env, dist = jmeta.make("point_nav")
    for name, tiny in (("dream", TINY), ("erl2", ERL2_TINY)):
        with pytest.raises(ConfigError, match=f"{name}: supports discrete action spaces only"):
            make_algorithm(name, env, dist, tiny, 2)


def test_erl2_needs_a_second_episode():
    env, dist = jmeta.make("maze2d", variant="small")  # one episode per trial
    with pytest.raises(ConfigError, match="erl2.first_optimized_episode"):
        make_algorithm("erl2", env, dist, dataclasses.replace(ERL2_TINY, episodes_per_trial=None), 2)
    with pytest.raises(ConfigError, match="rl2.first_optimized_episode"):
        make_algorithm("rl2", env, dist, dataclasses.replace(RL2_TINY, first_optimized_episode=-1), 2)


# ---------------------------------------------------------------- pixels


def test_image_shape_is_read_through_wrappers_and_absent_for_symbolic_envs():
    assert image_shape(jmeta.make("visual_nav")[0]) == (60, 80, 3)
    assert image_shape(jmeta.make("maze3d")[0]) == (48, 64, 3)
    assert image_shape(jmeta.make("maze2d")[0]) is None
    assert image_shape(RescaleActions(jmeta.make("point_nav")[0])) is None


def test_pixel_encoder_matches_dreams_miniworld_embedder_shape():
    assert conv_output_size((60, 80, 3)) == 32 * 5 * 7  # DREAM's Linear(32 * 7 * 5, embed)
    encoder = PixelEncoder(16)
    params = encoder.init(jax.random.key(0), jnp.zeros((60, 80, 3)))
    out = encoder.apply(params, jnp.zeros((2, 5, 60, 80, 3)))
    assert out.shape == (2, 5, 16)
    with pytest.raises(ValueError, match="too small"):
        conv_output_size((8, 8, 3))


def test_split_pixels_encodes_the_image_part_and_passes_the_rest_through():
    import flax.linen as nn

    from jmeta.networks.cnn import split_pixels

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            return split_pixels(x, (32, 32, 3), 5)

    x = jnp.concatenate([jax.random.uniform(jax.random.key(0), (2, 32 * 32 * 3)), jnp.array([[1.0, 0.0], [0.0, 1.0]])], -1)
    params = Net().init(jax.random.key(1), x)
    out = Net().apply(params, x)
    assert out.shape == (2, 5 + 2)
    np.testing.assert_array_equal(out[:, 5:], [[1.0, 0.0], [0.0, 1.0]])  # visual_nav's instruction, untouched
    assert "pixels" in params["params"]


def test_rl2_on_pixels_encodes_the_image_and_keeps_the_rest():
    env, dist = _small_pixel_env()
    learner = make_algorithm("rl2", env, dist, RL2_TINY, 2)
    net = learner.network
    assert isinstance(net, RecurrentActorCritic) and net.image_shape == (32, 32, 3)
    state = learner.init(jax.random.key(0))
    kernel = state.params["core"]["Dense_0"]["kernel"]
    # Input to the MLP: CNN features + previous action (3) + reward + done (maze3d's observation is all image).
    assert kernel.shape[0] == RL2_TINY.pixel_embed_size + 3 + 2
    _, metrics = jax.jit(learner.meta_step)(state, jax.random.key(1))
    assert np.isfinite(float(metrics["train/return_trial"]))


# ---------------------------------------------------------------- the small maze


def test_small_maze_layout_is_valid_and_the_scripted_references_behave():
    from jmeta.baselines.maze import all_policies, run_episodes
    from jmeta.envs.pixel.maze_layouts import SMALL_LAYOUT, layout_problems, parse_layout

    bank = parse_layout(SMALL_LAYOUT)
    assert layout_problems(bank.walls[0], bank.start[0], bank.boxes[0]) == []
    env, dist = jmeta.make("maze2d", variant="small")
    assert env.grid_shape == (6, 9) and env.spec.horizon == 50
    tasks = sample_tasks(dist, jax.random.key(0), 256)
    stats = run_episodes(env, all_policies(), tasks, jax.random.key(1))  # random, guesser, explorer, oracle
    success = np.asarray(stats.success.mean(axis=1))
    assert success[2] == 1.0 and success[3] == 1.0  # explorer and oracle
    assert abs(success[1] - 0.5) < 3 * 0.5 / np.sqrt(256)  # guesser: a coin flip
    assert float(stats.revealed[2].min()) == 1.0 and float(stats.revealed[3].max()) == 0.0
    with pytest.raises(ConfigError, match="maze.layout"):
        jmeta.make("maze2d", layout="tiny")


@pytest.mark.extended  # about 15 s of compiling; the default tier covers the pixel encoder through RL²
def test_varibad_on_pixels_encodes_the_image_in_the_encoder_and_the_policy():
    from jmeta.algos.varibad import TINY as VB_TINY

    env, dist = _small_pixel_env()
    learner = make_algorithm("varibad", env, dist, dataclasses.replace(VB_TINY, reward_multi_head=False), 2)
    assert learner.encoder.image_shape == (32, 32, 3) and learner.policy.image_shape == (32, 32, 3)
    state = learner.init(jax.random.key(0))
    _, metrics = jax.jit(learner.meta_step)(state, jax.random.key(1))
    assert all(np.isfinite(float(v)) for v in metrics.values())


def test_maze_and_visual_nav_task_features_are_one_hot_colours():
    from jmeta.envs.base import task_features
    from jmeta.envs.pixel.maze import task_from_bank

    env, _ = jmeta.make("maze2d")
    np.testing.assert_array_equal(task_features(env, task_from_bank(env.bank, 0, 1)), [0.0, 1.0])
    env, dist = jmeta.make("visual_nav")
    task = dist.sample(jax.random.key(3))
    np.testing.assert_array_equal(task_features(env, task), np.eye(3)[int(task.color)])

"""jmeta envs as gymnasium environments, and gymnax-style envs as jmeta envs.

* :func:`make_vec` / :class:`MetaVectorEnv`: ``num_envs`` sub-envs of one jmeta env as a
  ``gymnasium.vector.VectorEnv``. ``reset`` and ``step`` are each one jitted call of a function
  vmapped over the sub-envs (no Python loop over sub-envs), plus one transfer of the results.
* :func:`make` / :class:`MetaGymEnv`: one env as a ``gymnasium.Env`` (passes gymnasium's
  ``check_env``).
* :func:`register_gymnasium_envs`: ``gymnasium.make("jmeta/point_nav")`` and
  ``gymnasium.make_vec("jmeta/point_nav", num_envs=8)``.
* :func:`from_gymnax_style`: a gymnax-style functional env (the env params are the task) as a
  jmeta ``MetaEnv`` and its task distribution.

**Tasks.** A sub-env keeps one task for a *trial* of episodes. The task comes from a fixed task
(``task=``, or :meth:`MetaVectorEnv.set_tasks`) or is drawn from ``tasks``: ``"train"`` (the env's
task distribution), ``"eval"`` (uniform over :func:`jmeta.tasks.evaluation_bank`, the held-out
tasks jmeta evaluates on), a :class:`~jmeta.tasks.TaskBank` (uniform over the bank) or any
``TaskDistribution``. ``resample`` says when a sub-env draws a new task:

* ``"trial"`` (default): at ``reset()`` and at every autoreset that starts a new trial, i.e. a
  trial is ``spec.episodes_per_trial`` consecutive episodes of one task (override it with
  ``episodes_per_trial=K``);
* ``"episode"``: at ``reset()`` and at every autoreset (a trial is one episode);
* ``"reset"``: only at ``reset()``.

A fixed task is never redrawn; its episodes are still counted in trials of the same length.

**Time limit.** jmeta envs never end an episode on time (the rollout engine runs ``spec.horizon``
steps); here an episode is truncated when its ``spec.horizon``-th step is taken
(``truncated = t >= horizon``), and terminated when the env says so.

**Autoreset.** ``AutoresetMode.NEXT_STEP``, gymnasium's default: the ``step`` after one that
returned ``terminated | truncated`` for a sub-env ignores its action and returns the first
observation of its next episode with reward 0 and ``terminated = truncated = False``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, Literal

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from jmeta.envs.base import EnvSpec, MetaEnv, StepOut, Task, task_features
from jmeta.envs.registry import list_envs
from jmeta.envs.registry import make as make_meta_env
from jmeta.envs.wrappers import ValidatedEnv
from jmeta.errors import ConfigError, EnvInputError
from jmeta.spaces import Box, Discrete, Space
from jmeta.tasks import TaskBank, TaskDistribution, TaskDistributionBase, evaluation_bank

Resample = Literal["trial", "episode", "reset"]
RESAMPLE_MODES: tuple[str, ...] = ("trial", "episode", "reset")

#: Where tasks come from: "train", "eval", a TaskBank or a TaskDistribution.
TaskSource = str | TaskBank | TaskDistribution

#: ``draw(key) -> (task, index)``: one task and its int32 index in a bank (-1 when not from a bank).
Sampler = Callable[[jax.Array], tuple[Task, jax.Array]]

#: The trial length under ``resample="reset"``: never reached.
_NEVER = 2**30


# ----------------------------------------------------------------------------------- spaces, keys


def to_gymnasium_space(space: Space) -> gymnasium.spaces.Space:
    """The gymnasium space of a jmeta space: ``Box`` -> ``spaces.Box`` (same bounds, shape and
    dtype); ``Discrete(n)`` -> ``spaces.Discrete(n)`` with jmeta's int32 dtype."""
    if isinstance(space, Discrete):
        return gymnasium.spaces.Discrete(space.n, dtype=np.dtype(space.dtype))
    if isinstance(space, Box):
        return gymnasium.spaces.Box(space.low, space.high, tuple(space.shape), np.dtype(space.dtype))
    raise TypeError(f"no gymnasium space for the jmeta space {space!r}")


def _key_from_seed(seed: int) -> jax.Array:
    """A PRNG key from any non-negative int seed (64 bits of it, mixed by numpy's SeedSequence)."""
    high, low = np.random.SeedSequence(seed).generate_state(2)
    return jax.random.fold_in(jax.random.key(int(high)), np.uint32(low))


def _check_num_envs(num_envs: Any) -> None:
    if isinstance(num_envs, bool) or not isinstance(num_envs, int | np.integer) or num_envs < 1:
        raise ConfigError(f"num_envs must be an integer >= 1, got {num_envs!r}")


def _check_seed(seed: Any) -> None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0):
        raise ConfigError(f"seed must be None or an integer >= 0, got {seed!r}")


def _check_actions(spec: EnvSpec, actions: Any, batch: tuple[int, ...]) -> np.ndarray:
    """``actions`` as a numpy array of shape ``batch + action shape`` in the action space's dtype.

    Discrete actions must be integers in ``[0, n)``; Box actions any real numbers (the env clips
    them to its bounds, and :class:`~jmeta.envs.wrappers.ValidatedEnv` zeroes NaN/inf)."""
    space = spec.action_space
    try:
        array = np.asarray(actions)
    except (TypeError, ValueError) as exc:
        raise EnvInputError(f"{spec.name}: the actions are not an array ({exc})") from None
    want = batch + tuple(space.shape)
    if array.shape != want:
        layout = " (num_envs, *action shape)" if batch else ""
        raise EnvInputError(f"{spec.name}: actions must have shape {want}{layout}, got {array.shape}")
    if isinstance(space, Discrete):
        if not np.issubdtype(array.dtype, np.integer):
            raise EnvInputError(f"{spec.name}: actions must be integers in [0, {space.n}), got dtype {array.dtype}")
        if array.size and (array.min() < 0 or array.max() >= space.n):
            raise EnvInputError(f"{spec.name}: actions must be in [0, {space.n}), got {array.min()}..{array.max()}")
        return array.astype(np.int32)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise EnvInputError(f"{spec.name}: actions must be numeric, got dtype {array.dtype}")
    return array.astype(np.dtype(space.dtype))


def _to_numpy(tree: Any) -> Any:
    """Device arrays -> fresh, writable numpy arrays (one transfer for the whole tree)."""
    return jax.tree_util.tree_map(np.array, jax.device_get(tree))


# -------------------------------------------------------------------------------------- tasks


def _leaf_shape(leaf: Any) -> tuple[int, ...]:
    return tuple(leaf.shape) if hasattr(leaf, "shape") else np.shape(leaf)


def _check_task(task: Task, template: Task, batch: tuple[int, ...], where: str) -> None:
    """Raises :class:`EnvInputError` unless ``task`` has the template's structure and leaf shapes
    ``batch + template leaf shape`` (``task`` may hold arrays or ``ShapeDtypeStruct``s)."""
    treedef, ref_def = jax.tree_util.tree_structure(task), jax.tree_util.tree_structure(template)
    if treedef != ref_def or str(treedef) != str(ref_def):
        raise EnvInputError(f"{where}: the task's structure {treedef} is not this env's ({ref_def}); pass a task "
                            "from the env's task distribution (to set the env's own option named 'task', build it "
                            "with jmeta.make and wrap it with MetaVectorEnv / MetaGymEnv)")
    shapes = [_leaf_shape(leaf) for leaf in jax.tree_util.tree_leaves(task)]
    wanted = [batch + tuple(ref.shape) for ref in jax.tree_util.tree_leaves(template)]
    if shapes != wanted:
        raise EnvInputError(f"{where}: the task's leaf shapes {shapes} differ from the expected {wanted}")


def _conform(task: Task, template: Task, batch: tuple[int, ...], where: str) -> Task:
    """``task`` checked by :func:`_check_task`, as arrays of the template's dtypes."""
    _check_task(task, template, batch, where)
    return jax.tree_util.tree_map(lambda leaf, ref: jnp.asarray(leaf, ref.dtype), task, template)


def _draw_from_distribution(dist: TaskDistribution, key: jax.Array) -> tuple[Task, jax.Array]:
    return dist.sample(key), jnp.asarray(-1, jnp.int32)


def _draw_from_bank(bank: TaskBank, key: jax.Array) -> tuple[Task, jax.Array]:
    index = jax.random.randint(key, (), 0, bank.size, jnp.int32)
    return bank.get(index), index


def _sampler(source: TaskSource, dist: TaskDistribution, template: Task) -> tuple[Sampler, bool]:
    """``(draw, from_bank)`` for a task source: "train" (``dist``), "eval" (its evaluation bank), a
    TaskBank or a TaskDistribution."""
    if isinstance(source, str):
        if source not in ("train", "eval"):
            raise ConfigError(f"tasks={source!r} is invalid; valid values are 'train', 'eval', a TaskBank or a "
                              "TaskDistribution")
        source = dist if source == "train" else evaluation_bank(dist)
    if isinstance(source, TaskBank):
        bank = TaskBank(_conform(source.tasks, template, (source.size,), "tasks (a TaskBank)"))
        return functools.partial(_draw_from_bank, bank), True
    if not callable(getattr(source, "sample", None)):
        raise ConfigError(f"tasks must be 'train', 'eval', a TaskBank or a TaskDistribution, got {type(source).__name__}")
    _check_task(jax.eval_shape(source.sample, jax.random.key(0)), template, (), "tasks (a TaskDistribution)")
    return functools.partial(_draw_from_distribution, source), False


def _trial_length(spec: EnvSpec, resample: str) -> int:
    if resample not in RESAMPLE_MODES:
        raise ConfigError(f"resample={resample!r} is invalid; valid values are: {', '.join(RESAMPLE_MODES)}")
    return {"trial": spec.episodes_per_trial, "episode": 1, "reset": _NEVER}[resample]


def _fixed_tasks(template: Task, task: Task | None, batch: tuple[int, ...]) -> tuple[Task, jax.Array]:
    """``(tasks, fixed)`` with leading ``batch`` axes: ``task`` (one task, broadcast, or already
    stacked on ``batch``) and True, or a zero placeholder and False when ``task`` is None."""
    if task is None:
        zeros = jax.tree_util.tree_map(lambda ref: jnp.zeros(batch + tuple(ref.shape), ref.dtype), template)
        return zeros, jnp.zeros(batch, bool)
    ref_shapes = [tuple(ref.shape) for ref in jax.tree_util.tree_leaves(template)]
    single = [np.shape(leaf) for leaf in jax.tree_util.tree_leaves(task)] == ref_shapes
    task = _conform(task, template, () if single else batch, "task")
    if single:
        task = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, batch + x.shape), task)
    return task, jnp.ones(batch, bool)


# ------------------------------------------------------------------------- pure sub-env functions


@struct.dataclass
class SubEnvState:
    """One sub-env between calls (in a vector env every leaf has a leading [num_envs] axis).

    env_state: the jmeta env's state. obs: the last observation returned. task: the current task.
    task_index: int32 index of the task in the task bank, -1 when it is not from a bank.
    fixed: bool, the task is fixed (never redrawn). key: this sub-env's PRNG key.
    t: int32 steps taken in the episode. episode: int32 index of the episode in its trial.
    done: bool, the last step ended the episode (the next vector step resets it).
    """

    env_state: Any
    obs: jax.Array
    task: Task
    task_index: jax.Array
    fixed: jax.Array
    key: jax.Array
    t: jax.Array
    episode: jax.Array
    done: jax.Array


def _select(pred: jax.Array, new: Any, old: Any) -> Any:
    return jax.tree_util.tree_map(lambda n, o: jnp.where(pred, n, o), new, old)


def _begin_episode(env: MetaEnv, draw: Sampler, sub: SubEnvState, new_trial: jax.Array) -> SubEnvState:
    """Resets the env for the next episode; a new trial of an unfixed task draws a new task first.
    Reads every field of ``sub`` except ``env_state``, ``obs``, ``t`` and ``done``."""
    key, task_key, reset_key = jax.random.split(sub.key, 3)
    drawn, index = draw(task_key)
    redraw = new_trial & ~sub.fixed
    task = _select(redraw, drawn, sub.task)
    obs, env_state = env.reset(reset_key, task)
    return SubEnvState(
        env_state=env_state, obs=obs, task=task, task_index=jnp.where(redraw, index, sub.task_index),
        fixed=sub.fixed, key=key, t=jnp.zeros((), jnp.int32),
        episode=jnp.where(new_trial, 0, sub.episode + 1).astype(jnp.int32), done=jnp.zeros((), bool),
    )


def _start_trial(env: MetaEnv, draw: Sampler, key: jax.Array, fixed_task: Task, fixed: jax.Array) -> SubEnvState:
    """A sub-env at the start of a new trial: the fixed task if ``fixed``, else a drawn one."""
    blank = SubEnvState(env_state=None, obs=None, task=fixed_task, task_index=jnp.asarray(-1, jnp.int32),
                        fixed=jnp.asarray(fixed), key=key, t=None, episode=jnp.zeros((), jnp.int32), done=None)
    return _begin_episode(env, draw, blank, jnp.asarray(True))


def _next_episode(env: MetaEnv, draw: Sampler, trial_length: int, sub: SubEnvState) -> tuple[SubEnvState, jax.Array]:
    """The sub-env's next episode (a new trial after ``trial_length`` episodes). Returns ``(sub, new_trial)``."""
    new_trial = sub.episode + 1 >= trial_length
    return _begin_episode(env, draw, sub, new_trial), new_trial


def _advance(env: MetaEnv, horizon: int, sub: SubEnvState, action: jax.Array) -> tuple[SubEnvState, StepOut]:
    """One env step; ``out.truncated`` is ``t >= horizon`` after the step."""
    key, step_key = jax.random.split(sub.key)
    out = env.step(step_key, sub.env_state, action, sub.task)
    t = sub.t + 1
    truncated = t >= horizon
    sub = sub.replace(env_state=out.state, obs=out.obs, key=key, t=t, done=out.terminated | truncated)
    return sub, out.replace(truncated=truncated)


def _task_info(env: MetaEnv, sub: SubEnvState, trial_start: jax.Array) -> dict[str, jax.Array]:
    """task_features [F] float32, task_index int32, episode_in_trial int32, trial_start bool."""
    return {"task_features": task_features(env, sub.task), "task_index": sub.task_index,
            "episode_in_trial": sub.episode, "trial_start": trial_start}


# --------------------------------------------------------------------------------- vector env


def _vector_start(env: MetaEnv, draw: Sampler, num_envs: int, key: jax.Array, fixed_task: Task,
                  fixed: jax.Array) -> tuple[jax.Array, SubEnvState]:
    """``num_envs`` sub-envs at the start of new trials (leading axis [N]). Returns ``(next key, subs)``."""
    key, sub_key = jax.random.split(key)
    start = functools.partial(_start_trial, env, draw)
    return key, jax.vmap(start)(jax.random.split(sub_key, num_envs), fixed_task, fixed)


def _vector_reset(env: MetaEnv, draw: Sampler, num_envs: int, key: jax.Array, fixed_task: Task, fixed: jax.Array,
                  subs: SubEnvState | None, mask: jax.Array) -> tuple[jax.Array, SubEnvState, dict]:
    """New trials for the sub-envs where ``mask`` [N] is True (all when ``subs`` is None)."""
    key, fresh = _vector_start(env, draw, num_envs, key, fixed_task, fixed)
    if subs is not None:
        fresh = jax.vmap(_select)(mask, fresh, subs)
    return key, fresh, jax.vmap(functools.partial(_task_info, env))(fresh, mask)


def _vector_step(env: MetaEnv, draw: Sampler, horizon: int, trial_length: int, subs: SubEnvState,
                 actions: jax.Array) -> tuple[SubEnvState, tuple]:
    """One vector step with NEXT_STEP autoreset (leaves [N, ...]): a sub-env whose last step ended
    its episode starts its next one (reward 0, not done, env info zeroed, the action ignored); the
    others take their actions. The resets run under ``lax.cond``, only on steps where one is due.

    Returns ``(subs, (obs, reward, terminated, truncated, env_info, stepped, task_info))``, ``stepped``
    [N] bool being False where a sub-env reset."""
    resets = subs.done
    stepped, out = jax.vmap(functools.partial(_advance, env, horizon))(subs, actions)

    def restart(_):
        restarted, new_trial = jax.vmap(functools.partial(_next_episode, env, draw, trial_length))(subs)
        return jax.vmap(_select)(resets, restarted, stepped), resets & new_trial

    def keep(_):
        return stepped, jnp.zeros_like(resets)

    subs, trial_start = jax.lax.cond(resets.any(), restart, keep, None)
    reward, terminated, truncated, info = jax.vmap(_select)(
        resets, jax.tree_util.tree_map(jnp.zeros_like, (out.reward, out.terminated, out.truncated, out.info)),
        (out.reward, out.terminated, out.truncated, out.info))
    task_info = jax.vmap(functools.partial(_task_info, env))(subs, trial_start)
    return subs, (subs.obs, reward, terminated, truncated, info, ~resets, task_info)


def _vector_infos(task_info: dict, from_bank: bool, env_info: dict | None = None,
                  stepped: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """gymnasium's vector infos: each key's [N] array and its ``_key`` [N] bool mask. The env's own
    info is present where a sub-env stepped (not where it autoreset); ``task_index`` is present only
    with a task bank, where the task came from the bank."""
    infos: dict[str, np.ndarray] = {}
    for name, value in (env_info or {}).items():
        infos[name], infos[f"_{name}"] = value, stepped.copy()
    for name, value in task_info.items():
        if name == "task_index" and not from_bank:
            continue
        infos[name] = value
        infos[f"_{name}"] = value >= 0 if name == "task_index" else np.ones(value.shape[0], bool)
    return infos


class MetaVectorEnv(VectorEnv):
    """``num_envs`` sub-envs of a jmeta env as a gymnasium ``VectorEnv`` (``NEXT_STEP`` autoreset).

    ``reset(seed=None, options=None) -> (obs [N, *obs], infos)`` starts a new trial in every
    sub-env (``options={"reset_mask": bool [N]}``: only in those); ``step(actions [N, *action])
    -> (obs [N, *obs], rewards float32 [N], terminations bool [N], truncations bool [N], infos)``.
    ``infos``: the env's own step info (e.g. ``distance``; masked out on autoreset steps) and
    ``task_features`` [N, F] float32, ``episode_in_trial`` [N] int32, ``trial_start`` [N] bool (the
    returned observation is the first of a trial) and, with a task bank, ``task_index`` [N] int32.
    See the module docstring for when tasks are drawn. Seeds: ``reset(seed=s)`` restarts the key
    stream from ``s``; a ``reset()`` before any seeded one uses the constructor's ``seed``.
    """

    def __init__(self, env: MetaEnv, task_distribution: TaskDistribution, num_envs: int, *,
                 task: Task | None = None, tasks: TaskSource = "train", resample: Resample = "trial",
                 seed: int = 0):
        _check_num_envs(num_envs)
        _check_seed(seed)
        self.meta_env, self.jmeta_spec, self.num_envs = env, env.spec, int(num_envs)
        self._template = jax.eval_shape(task_distribution.sample, jax.random.key(0))
        draw, self._from_bank = _sampler(tasks, task_distribution, self._template)
        trial_length = _trial_length(env.spec, resample)
        self.metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}
        self.single_observation_space = to_gymnasium_space(env.spec.observation_space)
        self.single_action_space = to_gymnasium_space(env.spec.action_space)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._key = _key_from_seed(seed)
        self._subs: SubEnvState | None = None
        self.set_tasks(task)
        reset, everyone = functools.partial(_vector_reset, env, draw, self.num_envs), jnp.ones(self.num_envs, bool)
        self._reset_all = jax.jit(lambda key, fixed_task, fixed: reset(key, fixed_task, fixed, None, everyone))
        self._reset_masked = jax.jit(reset)
        self._step = jax.jit(functools.partial(_vector_step, env, draw, env.spec.horizon, trial_length))

    def __repr__(self) -> str:
        return f"MetaVectorEnv({self.jmeta_spec.env_id}, num_envs={self.num_envs})"

    def set_tasks(self, tasks: Task | None) -> None:
        """Fixes the sub-envs' tasks from the next ``reset()`` on: one task (every sub-env) or tasks
        stacked on a leading [num_envs] axis; ``None`` draws them from ``tasks`` again."""
        self._fixed_task, self._fixed = _fixed_tasks(self._template, tasks, (self.num_envs,))

    @property
    def current_tasks(self) -> Task:
        """The sub-envs' current tasks, stacked on a leading [num_envs] axis (device arrays)."""
        if self._subs is None:
            raise gymnasium.error.ResetNeeded("call reset() first")
        return self._subs.task

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        _check_seed(seed)
        super().reset(seed=seed)
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        if options:
            raise ConfigError(f"unknown reset option(s) {sorted(options)}; valid: reset_mask")
        if seed is not None:
            self._key = _key_from_seed(seed)
        if mask is None:
            self._key, self._subs, info = self._reset_all(self._key, self._fixed_task, self._fixed)
        else:
            mask = np.asarray(mask)
            if mask.shape != (self.num_envs,) or mask.dtype != np.bool_:
                raise ConfigError(f"options['reset_mask'] must be a bool array of shape ({self.num_envs},), "
                                  f"got {mask.dtype} {mask.shape}")
            if self._subs is None:
                raise gymnasium.error.ResetNeeded("reset() without a reset_mask first")
            self._key, self._subs, info = self._reset_masked(self._key, self._fixed_task, self._fixed, self._subs, mask)
        obs, info = _to_numpy((self._subs.obs, info))
        return obs, _vector_infos(info, self._from_bank)

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        if self._subs is None:
            raise gymnasium.error.ResetNeeded("call reset() before step()")
        actions = _check_actions(self.jmeta_spec, actions, (self.num_envs,))
        self._subs, result = self._step(self._subs, actions)
        obs, reward, terminated, truncated, env_info, stepped, task_info = _to_numpy(result)
        return obs, reward, terminated, truncated, _vector_infos(task_info, self._from_bank, env_info, stepped)


# --------------------------------------------------------------------------------- single env


def _single_info(info: dict, from_bank: bool, env_info: dict | None = None) -> dict[str, Any]:
    """A single env's info: the env's own (Python floats), then the task keys."""
    out: dict[str, Any] = {name: value.item() for name, value in (env_info or {}).items()}
    out["task_features"] = info["task_features"]
    out["episode_in_trial"] = int(info["episode_in_trial"])
    out["trial_start"] = bool(info["trial_start"])
    if from_bank:
        out["task_index"] = int(info["task_index"])
    return out


class MetaGymEnv(gymnasium.Env):
    """One jmeta env as a ``gymnasium.Env`` (a fixed task or tasks drawn as in :class:`MetaVectorEnv`).

    ``reset()`` starts the next episode: a new trial (a task drawn per ``resample``) on the first
    reset, on ``reset(seed=...)``, with ``options={"new_trial": True}``, after :meth:`set_tasks`
    and once the trial's episodes are used up; otherwise the next episode of the same task.
    ``step(action)`` returns ``(obs, reward: float, terminated: bool, truncated: bool, info)``;
    ``info`` holds the env's own info (floats) and ``task_features`` [F], ``episode_in_trial``,
    ``trial_start`` and, with a task bank, ``task_index``.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, env: MetaEnv, task_distribution: TaskDistribution, *, task: Task | None = None,
                 tasks: TaskSource = "train", resample: Resample = "trial", seed: int = 0):
        _check_seed(seed)
        self.meta_env, self.jmeta_spec = env, env.spec
        self._template = jax.eval_shape(task_distribution.sample, jax.random.key(0))
        draw, self._from_bank = _sampler(tasks, task_distribution, self._template)
        trial_length = _trial_length(env.spec, resample)
        self.observation_space = to_gymnasium_space(env.spec.observation_space)
        self.action_space = to_gymnasium_space(env.spec.action_space)
        self._key = _key_from_seed(seed)
        self._sub: SubEnvState | None = None
        self.set_tasks(task)

        def start(key, fixed_task, fixed):
            key, sub_key = jax.random.split(key)
            sub = _start_trial(env, draw, sub_key, fixed_task, fixed)
            return key, sub, _task_info(env, sub, jnp.asarray(True))

        def next_episode(sub):
            sub, new_trial = _next_episode(env, draw, trial_length, sub)
            return sub, _task_info(env, sub, new_trial)

        def step(sub, action):
            sub, out = _advance(env, env.spec.horizon, sub, action)
            return sub, (out.obs, out.reward, out.terminated, out.truncated, out.info,
                         _task_info(env, sub, jnp.asarray(False)))

        self._start, self._next_episode, self._step = jax.jit(start), jax.jit(next_episode), jax.jit(step)

    def set_tasks(self, task: Task | None) -> None:
        """Fixes the task (``None``: draw tasks again); the next ``reset()`` starts a trial with it."""
        self._fixed_task, self._fixed = _fixed_tasks(self._template, task, ())
        self._sub = None

    def _observation(self, obs: np.ndarray) -> Any:
        return obs.item() if isinstance(self.jmeta_spec.observation_space, Discrete) else obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        _check_seed(seed)
        super().reset(seed=seed)
        options = dict(options or {})
        new_trial = bool(options.pop("new_trial", False))
        if options:
            raise ConfigError(f"unknown reset option(s) {sorted(options)}; valid: new_trial")
        if seed is not None:
            self._key = _key_from_seed(seed)
        if self._sub is None or seed is not None or new_trial:
            self._key, self._sub, info = self._start(self._key, self._fixed_task, self._fixed)
        else:
            self._sub, info = self._next_episode(self._sub)
        obs, info = _to_numpy((self._sub.obs, info))
        return self._observation(obs), _single_info(info, self._from_bank)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        if self._sub is None:
            raise gymnasium.error.ResetNeeded("call reset() before step()")
        self._sub, result = self._step(self._sub, _check_actions(self.jmeta_spec, action, ()))
        obs, reward, terminated, truncated, env_info, info = _to_numpy(result)
        return (self._observation(obs), float(reward), bool(terminated), bool(truncated),
                _single_info(info, self._from_bank, env_info))


# ------------------------------------------------------------------------------ by name


def make_vec(env_name: str, num_envs: int, *, variant: str = "default", task: Task | None = None,
             tasks: TaskSource = "train", resample: Resample = "trial", seed: int = 0,
             **env_overrides: Any) -> MetaVectorEnv:
    """``num_envs`` sub-envs of the registered jmeta env ``env_name`` as a gymnasium ``VectorEnv``.

    ``variant`` and ``env_overrides`` (e.g. ``horizon=50``) go to ``jmeta.make``, which lists the
    valid names and options when one is unknown. ``task``: one fixed task for every sub-env
    (a task pytree, e.g. ``tasks.sample(key)``); otherwise tasks come from ``tasks`` and are drawn
    per ``resample`` (see the module docstring). ``seed``: the key stream of a first unseeded reset.
    """
    _check_num_envs(num_envs)  # before building the env
    env, dist = make_meta_env(env_name, variant, **env_overrides)
    return MetaVectorEnv(env, dist, num_envs, task=task, tasks=tasks, resample=resample, seed=seed)


def make(env_name: str, *, variant: str = "default", task: Task | None = None, tasks: TaskSource = "train",
         resample: Resample = "trial", seed: int = 0, **env_overrides: Any) -> MetaGymEnv:
    """The registered jmeta env ``env_name`` as a ``gymnasium.Env`` (arguments as :func:`make_vec`)."""
    env, dist = make_meta_env(env_name, variant, **env_overrides)
    return MetaGymEnv(env, dist, task=task, tasks=tasks, resample=resample, seed=seed)


def register_gymnasium_envs(namespace: str = "jmeta") -> list[str]:
    """Registers every jmeta env with gymnasium as ``"{namespace}/{name}"`` (idempotent), so that
    ``gymnasium.make("jmeta/point_nav", variant="sparse")`` gives :func:`make`'s env and
    ``gymnasium.make_vec("jmeta/point_nav", num_envs=8)`` :func:`make_vec`'s. Returns the ids."""
    ids = []
    for name in list_envs():
        env_id = f"{namespace}/{name}"
        if env_id not in gymnasium.registry:
            gymnasium.register(env_id, entry_point=functools.partial(make, name),
                               vector_entry_point=functools.partial(make_vec, name))
        ids.append(env_id)
    return ids


# ------------------------------------------------------------------ gymnax-style -> jmeta


@dataclasses.dataclass(frozen=True)
class _FunctionDistribution(TaskDistributionBase):
    """A task distribution from a pure ``sample(key) -> task`` function."""

    sample_fn: Callable[[jax.Array], Task]

    def sample(self, key: jax.Array) -> Task:
        return self.sample_fn(key)


def _as_jmeta_space(space: Any) -> Space:
    """A jmeta space as is; a gymnax/gymnasium-like space by its ``n`` (Discrete) or its
    ``low``/``high``/``shape`` (Box, with the smallest low and largest high as its bounds)."""
    if isinstance(space, Box | Discrete):
        return space
    if hasattr(space, "n"):
        return Discrete(int(space.n))
    return Box(float(np.min(space.low)), float(np.max(space.high)), tuple(space.shape))


class GymnaxStyleEnv:
    """A gymnax-style env as a jmeta ``MetaEnv`` whose task is the env params.

    Calls ``env.reset(key, params) -> (obs, state)`` and ``env.step_env`` (gymnax's step without its
    internal auto-reset) or, without one, ``env.step(key, state, action, params) -> (obs, state,
    reward, done, info)``. ``done`` becomes ``terminated``; ``truncated`` is False (the rollout
    engine and the gymnasium wrappers apply ``spec.horizon``); ``info`` keeps its scalar entries.
    """

    def __init__(self, env: Any, spec: EnvSpec):
        self.env, self.spec = env, spec
        self._step = getattr(env, "step_env", None) or env.step

    def reset(self, key: jax.Array, task: Task) -> tuple[jax.Array, Any]:
        return self.env.reset(key, task)

    def step(self, key: jax.Array, state: Any, action: jax.Array, task: Task) -> StepOut:
        obs, state, reward, done, info = self._step(key, state, action, task)
        info = {k: jnp.asarray(v, jnp.float32) for k, v in dict(info).items() if jnp.ndim(v) == 0}
        return StepOut(obs=obs, state=state, reward=jnp.asarray(reward, jnp.float32),
                       terminated=jnp.asarray(done, bool), truncated=jnp.zeros((), bool), info=info)


def from_gymnax_style(env: Any, sample_params: Callable[[jax.Array], Task], *, name: str, horizon: int,
                      observation_space: Any, action_space: Any, episodes_per_trial: int = 1,
                      source: str = "gymnax-style env") -> tuple[MetaEnv, TaskDistribution]:
    """A gymnax-style functional env as ``(MetaEnv, TaskDistribution)``, the task being the env params.

    ``sample_params(key) -> params`` draws a task (e.g. ``default_params.replace(goal=...)``); the
    spaces are jmeta spaces or gymnax-like ones (see :func:`_as_jmeta_space`). The env is wrapped in
    :class:`~jmeta.envs.wrappers.ValidatedEnv` like every env of ``jmeta.make``, so it works with
    the rollout engine and with :class:`MetaVectorEnv` / :class:`MetaGymEnv` (the trainer builds envs
    by registered name, so training on it needs ``jmeta.envs.registry.register``).
    """
    if horizon < 1 or episodes_per_trial < 1:
        raise ConfigError(f"horizon and episodes_per_trial must be >= 1, got {horizon} and {episodes_per_trial}")
    spec = EnvSpec(name=name, variant="default", observation_space=_as_jmeta_space(observation_space),
                   action_space=_as_jmeta_space(action_space), horizon=horizon,
                   episodes_per_trial=episodes_per_trial, version="0", source=source)
    dist = _FunctionDistribution(sample_params)
    return ValidatedEnv(GymnaxStyleEnv(env, spec), jax.eval_shape(dist.sample, jax.random.key(0))), dist


__all__ = [
    "GymnaxStyleEnv",
    "MetaGymEnv",
    "MetaVectorEnv",
    "SubEnvState",
    "from_gymnax_style",
    "make",
    "make_vec",
    "register_gymnasium_envs",
    "to_gymnasium_space",
]

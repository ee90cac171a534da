"""What every meta-learner is: the algorithm protocol, its evaluation output and its presets.

An algorithm is one module that owns everything about it: a frozen ``Config`` dataclass (with its
meta-test settings, named ``eval_*``), a ``TINY`` config for tests, ``PRESETS`` per environment, its
state pytree (a :class:`flax.struct.dataclass` with at least ``params`` and ``iteration``) and the
methods below, all pure and jittable:

* ``init(key) -> state``;
* ``meta_step(state, key) -> (state, metrics)``: one whole meta-iteration (task sampling through
  :meth:`MetaLearner.sample_tasks`, rollouts, adaptation, outer update) with scalar metrics named
  ``train/...``;
* ``evaluate(state, tasks, key) -> EvalOut``: the meta-test protocol on given tasks.

The registry (:mod:`jmeta.algos`) maps names to modules; the trainer, evaluation, plots, CLIs and
benchmarks only use this interface and never name an algorithm.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar, Generic, TypeVar

import jax
from flax import struct

from jmeta.envs.base import MetaEnv
from jmeta.spaces import Discrete
from jmeta.tasks import TaskDistribution, sample_tasks
from jmeta.types import Metrics
from jmeta.validation import check, check_finite_fields

C = TypeVar("C")
S = TypeVar("S")

#: Axis labels of :class:`EvalOut` (the short name is used in metric names, the label in plots).
AXIS_LABELS: dict[str, str] = {
    "step": "adaptation steps",
    "episode": "episode of the trial (0 = first)",
}


@struct.dataclass
class EvalOut:
    """Meta-test returns on N tasks.

    returns: [N, K + 1] float32, the average return on each task at each point of the adaptation
      axis (k = 0: before any adaptation / the first episode of a trial).
    axis: static short name of that axis: "step" (after k inner gradient steps) or "episode" (the
      k-th episode of a trial); :data:`AXIS_LABELS` gives the long label.
    extras: named per-task arrays with a leading N axis (e.g. success rates [N, K + 1]).
    """

    returns: jax.Array
    axis: str = struct.field(pytree_node=False, default="step")
    extras: dict[str, jax.Array] = struct.field(default_factory=dict)


@struct.dataclass
class ViewerRollouts:
    """Meta-test episodes for drawing (:mod:`jmeta.visualize`): one episode per point of the
    adaptation axis on each of N tasks.

    traj: a :class:`~jmeta.types.Trajectory` with leaves [N, P, T, ...] whose extras hold
      ``env_state`` (the env state each action was taken in) and ``info``;
    labels: P static strings ("before adaptation", "after 1 inner step", "episode 1 of the trial", 0 = first).
    """

    traj: Any
    labels: tuple[str, ...] = struct.field(pytree_node=False, default=())


@dataclasses.dataclass(frozen=True)
class Preset:
    """Defaults for one (algorithm, environment) pair, applied before command-line overrides.

    run: overrides of run fields (``meta_iters``, ``meta_batch_size``, ``env_horizon``, ...).
    algo: overrides of the algorithm's ``Config`` fields.
    source: where the numbers come from (paper, reference code and its config file).

    ``PRESETS`` is keyed by environment name, or by ``"env:variant"`` for a variant that needs
    settings of its own (looked up first when that variant is asked for).
    """

    run: dict[str, Any] = dataclasses.field(default_factory=dict)
    algo: dict[str, Any] = dataclasses.field(default_factory=dict)
    source: str = ""


@dataclasses.dataclass(frozen=True)
class MetaLearner(abc.ABC, Generic[C, S]):
    """Base class of the algorithms: the shared fields and the protocol (module docstring).

    env: the (possibly wrapped) environment; task_dist: the training task distribution;
    config: the algorithm's ``Config``; meta_batch_size: tasks per meta-iteration;
    task_sharding: an optional ``jax.sharding.Sharding`` of the task axis, applied to every sampled
    task batch (the one place where a device mesh enters an algorithm).
    """

    env: MetaEnv
    task_dist: TaskDistribution
    config: C
    meta_batch_size: int
    task_sharding: Any = None

    name: ClassVar[str]
    Config: ClassVar[type]
    TINY: ClassVar[Any]
    PRESETS: ClassVar[dict[str, Preset]] = {}
    EVAL_AXIS: ClassVar[str] = "step"
    #: The action spaces the algorithm supports ("continuous": Box, "discrete": Discrete).
    ACTION_SPACES: ClassVar[tuple[str, ...]] = ("continuous", "discrete")

    def __post_init__(self):
        self.validate_config(self.config, self.meta_batch_size)  # also when built from Python, not the CLI
        kind = "discrete" if isinstance(self.env.spec.action_space, Discrete) else "continuous"
        check(kind in self.ACTION_SPACES, self.name,
              f"supports {' and '.join(self.ACTION_SPACES)} action spaces only; {self.env.spec.name} has a {kind} one",
              self.env.spec.action_space)

    @classmethod
    def validate_config(cls, config: Any, meta_batch_size: int | None = None) -> None:
        """Rejects an invalid config with one line naming the field (``{name}.{field}: ...``)."""
        check(isinstance(config, cls.Config), cls.name, f"config must be a {cls.Config.__name__}",
              type(config).__name__)
        check_finite_fields(config, cls.name)
        config.validate(cls.name, meta_batch_size)

    # ------------------------------------------------------------------ protocol
    @abc.abstractmethod
    def init(self, key: jax.Array) -> S:
        """The initial state (params, optimiser state, iteration 0, ...)."""

    @abc.abstractmethod
    def meta_step(self, state: S, key: jax.Array) -> tuple[S, Metrics]:
        """One meta-iteration; metrics are scalars named ``train/...``."""

    @abc.abstractmethod
    def evaluate(self, state: S, tasks: Any, key: jax.Array) -> EvalOut:
        """The meta-test protocol on ``tasks`` (leading axis N)."""

    @abc.abstractmethod
    def env_steps_per_iteration(self) -> int:
        """Env steps sampled by one meta-iteration (for throughput and the env_steps axis)."""

    @abc.abstractmethod
    def headline(self) -> dict[str, str]:
        """The training metrics to show in the progress bar and learning curve: name -> short label."""

    @abc.abstractmethod
    def viewer_rollouts(self, state: S, tasks: Any, key: jax.Array) -> ViewerRollouts:
        """The meta-test's episodes with their env states, one per point of the adaptation axis
        (leaves [N, P, T, ...]), for the rollout viewers (:mod:`jmeta.visualize`)."""

    # ------------------------------------------------------------------ shared
    def sample_tasks(self, key: jax.Array, num: int | None = None) -> Any:
        """``num`` (default ``meta_batch_size``) training tasks, constrained to ``task_sharding``."""
        return sample_tasks(self.task_dist, key, self.meta_batch_size if num is None else num, self.task_sharding)

    def with_eval_settings(self, **settings: Any) -> MetaLearner[C, S]:
        """A copy whose config has the given ``eval_*`` fields replaced (validated)."""
        fields = {f.name for f in dataclasses.fields(self.config) if f.name.startswith("eval_")}
        unknown = sorted(set(settings) - fields)
        check(not unknown, self.name, f"unknown meta-test setting(s) {unknown}; valid: {sorted(fields)}", unknown)
        config = dataclasses.replace(self.config, **settings)
        self.validate_config(config, self.meta_batch_size)
        return dataclasses.replace(self, config=config)

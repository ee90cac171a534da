"""Run configuration: a frozen dataclass generic over the algorithm's own ``Config``, validated
before anything compiles.

:class:`RunConfig` holds the fields every run has (environment, seed, budget, logging);
:class:`TrainConfig` adds ``algo_config``, the chosen algorithm's ``Config`` dataclass (defined in
the algorithm's module, found through the registry). On the command line the algorithm's fields
appear under the algorithm's name (``--maml.inner-lr``): :func:`cli_config_class` builds that
parser class for one algorithm, so ``--help`` lists the run fields and only that algorithm's
fields. Field docstrings become ``--help`` text through tyro. ``config.json`` keeps the same shape:
the run fields plus one section named after the algorithm.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Annotated, Any, Literal

from jmeta.algos import algorithm_class, list_algorithms
from jmeta.errors import ConfigError
from jmeta.validation import check, check_finite_fields


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """The fields of a meta-training run that do not depend on the algorithm."""

    algo: str = "maml"
    """Meta-learning algorithm (see jmeta.algos.list_algorithms())."""
    env: str = "point_nav"
    """Environment name (see jmeta.list_envs())."""
    env_variant: str = "default"
    """Published definition of the environment to use (see jmeta.list_variants(env))."""
    env_horizon: int | None = None
    """Override the environment's episode horizon (None: the variant's)."""
    env_physics: Literal["auto", "mjx", "mujoco"] = "auto"
    """Physics path of MuJoCo envs: "mujoco" (C engine via a host callback, fastest on CPU), "mjx"
    (pure JAX, for accelerators) or "auto" (mujoco on CPU, mjx elsewhere). Only for MuJoCo envs."""
    env_set: tuple[str, ...] = ()
    """FIELD=VALUE overrides of the environment's params for training and meta-test, e.g.
    `--env-set goal_radius=0.3` (valid fields: jmeta.envs.registry.variant_params(env, variant))."""
    eval_env_set: tuple[str, ...] = ()
    """FIELD=VALUE overrides applied on top of env_set for the meta-test only, e.g. MAESN's sparse
    meta-test `--eval-env-set reward=sparse` (wheeled_nav) or `sparse=true` (point_nav)."""
    rescale_actions: bool = True
    """Agent acts in [-s, s]^d, mapped onto the env's action box and clipped (rllab's normalize)."""
    action_scale: float = 1.0
    """s above (rllab/MAML: 1; pytorch-maml-rl and ProMP MuJoCo configs: 10)."""
    seed: int = 0
    """Random seed of the run (training keys derive from it and the iteration number)."""
    meta_iters: int = 300
    """Number of meta-iterations (outer updates)."""
    meta_batch_size: int = 40
    """Tasks sampled per meta-iteration."""
    devices: int | None = None
    """Devices the task axis is split over (a mesh with one axis, "tasks"; parameters replicated):
    None uses every device of the default backend, 1 no mesh. meta_batch_size must be a multiple
    of it (docs/scaling.md)."""
    num_seeds: int = 1
    """Train this many independently seeded runs at once (seeds seed, seed + 1, ...): the whole
    meta-iteration is vmapped over their train states, in one compiled program. Each seed's metrics
    and evaluation are kept in seeds/seed_{s}/; the run's own logs and plots are the means over
    seeds with 95% confidence intervals (docs/scaling.md)."""
    distributed: bool = False
    """Join a multi-process run with jax.distributed (also on when JAX_COORDINATOR_ADDRESS is set):
    the task axis spans every process' devices and process 0 alone writes the run directory
    (docs/scaling.md)."""
    chunk_size: int = 10
    """Meta-iterations per compiled call between host-side logging."""
    eval_every: int = 50
    """Run the meta-test protocol every this many iterations (0: only at the end)."""
    eval_tasks: int = 40
    """Size of the fixed held-out evaluation task bank."""
    checkpoint_every: int = 50
    """Save a checkpoint every this many iterations (also at the end and on SIGINT/SIGTERM)."""
    keep_checkpoints: int = 3
    """How many recent checkpoints to keep."""
    logdir: str = "runs"
    """Parent directory of run directories runs/{env}__{algo}__{seed}__{time}/."""
    run_name: str | None = None
    """Name of the run directory (default: {env}__{algo}__{seed}__{time})."""
    resume: str | None = None
    """Continue the run in this directory from its latest checkpoint."""
    tensorboard: bool = True
    """Write TensorBoard event files."""
    progress: bool = True
    """Show a live progress bar (stage, iterations, elapsed time, ETA, key metrics) and print each
    evaluation as it arrives."""
    wandb: bool = False
    """Also log to Weights & Biases (`pip install wandb`; the same metric names as TensorBoard, the
    run's config and versions as the wandb config)."""
    wandb_project: str = "jmeta"
    """Weights & Biases project."""
    wandb_entity: str | None = None
    """Weights & Biases entity (team or user; None: your default)."""
    wandb_mode: Literal["online", "offline"] = "online"
    """"offline" keeps the wandb run in the run directory (upload later with `wandb sync`)."""
    compilation_cache: bool = True
    """Use JAX's persistent compilation cache (~/.cache/jmeta/jax_compilation_cache, or
    $JMETA_COMPILATION_CACHE), so a second run of the same program skips most of its compile time."""
    report: bool = True
    """Write report.html (config, curves, evaluation table, rollout figures) at the end."""
    plots: bool = True
    """Write learning-curve and adaptation-curve PNGs at the end."""
    debug_nonfinite: bool = False
    """Debug mode: raise at the first operation that produces a NaN or an inf anywhere in training
    (JAX's debug_nans/debug_infs; much slower). Without it, a non-finite metric or parameter stops the
    run after its chunk and keeps the last good checkpoint."""

    def env_overrides(self) -> dict[str, Any]:
        """Keyword overrides of ``jmeta.make`` for the training env (``env_set``, then the dedicated
        fields ``env_horizon`` and ``env_physics``, which win)."""
        from jmeta.envs.registry import parse_overrides

        overrides = parse_overrides(self.env, self.env_variant, self.env_set, "env_set")
        if self.env_horizon is not None:
            overrides["horizon"] = self.env_horizon
        if self.env_physics != "auto":
            overrides["physics"] = self.env_physics
        return overrides

    def eval_env_overrides(self) -> dict[str, Any]:
        """Overrides of the meta-test env: :meth:`env_overrides` plus ``eval_env_set``."""
        from jmeta.envs.registry import parse_overrides

        return {**self.env_overrides(), **parse_overrides(self.env, self.env_variant, self.eval_env_set, "eval_env_set")}


_RUN_FIELDS = tuple(f.name for f in dataclasses.fields(RunConfig))


@dataclasses.dataclass(frozen=True)
class TrainConfig(RunConfig):
    """A meta-training run: `python -m jmeta.train --algo maml --env point_nav [flags]`.

    ``algo_config`` is the algorithm's ``Config`` (None: that algorithm's defaults), e.g.
    ``TrainConfig(algo="maml", algo_config=MAMLConfig(num_inner_steps=2))``.
    """

    algo_config: Any = None
    """The algorithm's hyperparameters (its Config dataclass)."""

    def __post_init__(self):
        if self.algo_config is None and self.algo in list_algorithms():
            object.__setattr__(self, "algo_config", algorithm_class(self.algo).Config())

    @property
    def algorithm(self) -> type:
        """The algorithm's class (raises an error listing the valid names if unknown)."""
        return algorithm_class(self.algo)

    def validate(self) -> None:
        from jmeta.envs import list_envs, list_variants

        check(self.algo in list_algorithms(), "algo", f"must be one of {list_algorithms()}", self.algo)
        check(self.env in list_envs(), "env", f"must be one of {list_envs()}", self.env)
        variants = list_variants(self.env)
        check(self.env_variant in variants, "env_variant", f"must be one of {variants} for {self.env}", self.env_variant)
        self.eval_env_overrides()  # parses env_set and eval_env_set (one-line errors naming the item)
        check(self.env_horizon is None or self.env_horizon >= 1, "env_horizon", "must be >= 1", self.env_horizon)
        if self.env_physics != "auto":
            from jmeta.envs.registry import variant_params

            has_physics = any(f.name == "physics" for f in dataclasses.fields(variant_params(self.env, self.env_variant)))
            check(has_physics, "env_physics", f"{self.env} is a pure-JAX env; only MuJoCo envs take it", self.env_physics)
        check(0 <= self.seed < 2**32, "seed", "must be in [0, 2**32 - 1] (JAX keys hold 32 bits)", self.seed)
        check(self.num_seeds >= 1, "num_seeds", "must be >= 1", self.num_seeds)
        check(self.seed + self.num_seeds <= 2**32, "num_seeds", "seed + num_seeds - 1 must be < 2**32", self.num_seeds)
        check(self.resume is None or bool(self.resume.strip()), "resume", "must be a run directory", self.resume)
        check(bool(self.logdir.strip()), "logdir", "must be a directory path", self.logdir)
        check(bool(self.wandb_project.strip()), "wandb_project", "must be a project name", self.wandb_project)
        check(self.run_name is None or (bool(self.run_name.strip()) and os.sep not in self.run_name), "run_name",
              "must be a non-empty directory name without a path separator", self.run_name)
        check_finite_fields(RunConfig(**{**self.run_fields(), "seed": 0}))
        check(self.action_scale > 0, "action_scale", "must be > 0", self.action_scale)
        check(self.meta_iters >= 1, "meta_iters", "must be >= 1", self.meta_iters)
        check(self.meta_batch_size >= 1, "meta_batch_size", "must be >= 1", self.meta_batch_size)
        check(self.chunk_size >= 1, "chunk_size", "must be >= 1", self.chunk_size)
        check(self.devices is None or self.devices >= 1, "devices", "must be >= 1 (or None: every device)",
              self.devices)
        check(self.eval_every >= 0, "eval_every", "must be >= 0", self.eval_every)
        check(self.eval_tasks >= 1, "eval_tasks", "must be >= 1", self.eval_tasks)
        check(self.checkpoint_every >= 1, "checkpoint_every", "must be >= 1", self.checkpoint_every)
        check(self.keep_checkpoints >= 1, "keep_checkpoints", "must be >= 1", self.keep_checkpoints)
        self.algorithm.validate_config(self.algo_config, self.meta_batch_size)

    @classmethod
    def from_preset(cls, algo: str, env: str, variant: str | None = None, *, algo_overrides: dict[str, Any] | None = None,
                    **run_overrides: Any) -> TrainConfig:
        """The config the command line starts from for ``--algo algo --env env [--env-variant variant]``
        (that pair's preset, :func:`preset_config`), with run fields and algorithm fields replaced, e.g.
        ``TrainConfig.from_preset("maml", "point_nav", meta_iters=50, algo_overrides={"inner_lr": 0.05})``.
        ``TrainConfig(algo=..., env=...)`` itself takes the algorithm's plain defaults, not the preset."""
        base = preset_config(algo, env, variant)
        unknown = sorted(set(run_overrides) - set(_RUN_FIELDS))
        if unknown:
            raise ConfigError(f"unknown run field(s) {', '.join(unknown)}; valid: {', '.join(_RUN_FIELDS)}")
        algo_config = base.algo_config
        if algo_overrides:
            fields = {f.name for f in dataclasses.fields(algo_config)}
            bad = sorted(set(algo_overrides) - fields)
            if bad:
                raise ConfigError(f"{algo}: unknown field(s) {', '.join(bad)}; valid: {', '.join(sorted(fields))}")
            algo_config = dataclasses.replace(algo_config, **algo_overrides)
        return dataclasses.replace(base, **run_overrides, algo_config=algo_config)

    def run_fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _RUN_FIELDS}

    def to_dict(self) -> dict[str, Any]:
        """The run fields plus the algorithm's section under its name (the config.json layout)."""
        return {**dataclasses.asdict(RunConfig(**self.run_fields())), self.algo: dataclasses.asdict(self.algo_config)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict` (sections of other algorithms, written by older versions, are ignored)."""
        data = dict(data)
        algo = data.get("algo", "maml")
        section = data.pop(algo, None) if isinstance(data.get(algo), dict) else None
        for name in list_algorithms():
            if isinstance(data.get(name), dict):
                data.pop(name)
        unknown = sorted(set(data) - set(_RUN_FIELDS))
        if unknown:
            raise ConfigError(f"config has unknown field(s): {', '.join(unknown)}")
        algo_config = None
        if section is not None and algo in list_algorithms():
            algo_config = config_from_dict(algorithm_class(algo).Config, section, algo)
        data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}  # JSON lists: env_set, ...
        return cls(**data, algo_config=algo_config)


def config_from_dict(config_cls: type, data: dict[str, Any], prefix: str) -> Any:
    """A config dataclass from its ``asdict`` form (JSON lists become tuples); unknown fields are refused."""
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{prefix}: unknown field(s) {', '.join(unknown)}")
    return config_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def preset_config(algo: str, env: str, variant: str | None = None) -> TrainConfig:
    """TrainConfig for ``algo`` on ``env`` with that pair's preset: the algorithm's
    ``PRESETS["env:variant"]`` when ``variant`` is given and has one, else ``PRESETS[env]``. The
    variant asked for is kept even when the preset names another."""
    cls = algorithm_class(algo)
    preset = (cls.PRESETS.get(f"{env}:{variant}") if variant else None) or cls.PRESETS.get(env)
    run = dict(preset.run) if preset is not None else {}
    if variant:
        run["env_variant"] = variant
    if preset is None:
        return TrainConfig(algo=algo, env=env, **run)
    return TrainConfig(algo=algo, env=env, **run, algo_config=dataclasses.replace(cls.Config(), **preset.algo))


def cli_config_class(algo: str) -> type:
    """The command-line class for ``algo``: the run fields plus one field named ``algo`` holding its Config."""
    cls = algorithm_class(algo)
    choices = Literal[tuple(list_algorithms())]  # type: ignore[valid-type]
    section = Annotated[cls.Config, _help(f"{algo} hyperparameters. {cls.Config.__doc__ or ''}")]
    return dataclasses.make_dataclass(
        "TrainConfig",
        [("algo", Annotated[choices, _help("Meta-learning algorithm.")], dataclasses.field(default=algo)),
         (algo, section, dataclasses.field(default_factory=cls.Config))],
        bases=(RunConfig,),
        frozen=True,
    )


def _help(text: str) -> Any:
    import tyro

    return tyro.conf.arg(help=text)


def to_cli(config: TrainConfig) -> Any:
    """``config`` as an instance of :func:`cli_config_class` (the parser's defaults)."""
    return cli_config_class(config.algo)(**config.run_fields(), **{config.algo: config.algo_config})


def from_cli(parsed: Any) -> TrainConfig:
    """The TrainConfig of a parsed :func:`cli_config_class` instance."""
    return TrainConfig(**{name: getattr(parsed, name) for name in _RUN_FIELDS}, algo_config=getattr(parsed, parsed.algo))

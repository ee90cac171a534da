"""Run and algorithm configurations: frozen dataclasses, validated before anything compiles.

Field docstrings become ``--help`` text through tyro.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Literal

from jmeta.errors import ConfigError
from jmeta.networks.policies import ACTIVATIONS
from jmeta.rl.surrogates import INNER_ESTIMATORS


def _check(cond: bool, field: str, message: str, value: Any) -> None:
    if not cond:
        raise ConfigError(f"{field}: {message}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class MAMLConfig:
    """MAML with a VPG inner loop and a TRPO (or PPO-clip) outer update."""

    episodes_per_task: int = 20
    """Episodes sampled per task for each inner step and for the post-adaptation batch."""
    num_inner_steps: int = 1
    """Inner VPG steps during meta-training (>= 1)."""
    inner_lr: float = 0.1
    """Inner-loop step size alpha (an array at run time: changing it does not recompile)."""
    first_order: bool = False
    """Treat the inner gradient as a constant (first-order MAML)."""
    inner_estimator: Literal["lvc", "dice", "vpg"] = "lvc"
    """Inner surrogate: 'lvc' (ProMP), 'dice' (unbiased, higher variance) or 'vpg' (original MAML, biased meta-gradient)."""
    outer: Literal["trpo", "ppo"] = "trpo"
    """Outer update: TRPO (conjugate gradient + line search) or PPO's clipped objective with Adam."""
    max_kl: float = 0.01
    """TRPO: mean-KL trust region of the post-adaptation policies."""
    cg_iters: int = 10
    """TRPO: conjugate-gradient iterations."""
    cg_damping: float = 1e-5
    """TRPO: damping added to the Fisher-vector product."""
    backtrack_ratio: float = 0.8
    """TRPO: line-search shrink factor."""
    max_backtracks: int = 15
    """TRPO: line-search candidates before the step is rejected."""
    ppo_epochs: int = 5
    """PPO outer: gradient steps per meta-iteration on the same post-adaptation batch."""
    ppo_lr: float = 1e-3
    """PPO outer: Adam learning rate."""
    ppo_clip: float = 0.2
    """PPO outer: ratio clipping epsilon."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 1.0
    """GAE lambda over the linear feature baseline (1.0: returns minus baseline)."""
    normalize_advantages: bool = True
    """Standardise advantages per task batch (rllab's center_adv)."""
    hidden_sizes: tuple[int, ...] = (100, 100)
    """Policy MLP hidden layer sizes."""
    activation: Literal["relu", "tanh", "elu", "gelu", "swish"] = "relu"
    """Policy MLP activation."""
    init_std: float = 1.0
    """Initial standard deviation of the Gaussian policy."""
    state_dependent_std: bool = False
    """Predict the log-std from the observation instead of learning one vector."""
    eval_adapt_steps: int = 3
    """Meta-test: inner steps K; returns are reported after 0..K steps."""
    eval_episodes_per_task: int = 20
    """Meta-test: episodes per task per adaptation step."""

    def validate(self, prefix: str = "maml", meta_batch_size: int | None = None) -> None:
        p = prefix + "."
        _check(self.episodes_per_task >= 1, p + "episodes_per_task", "must be >= 1", self.episodes_per_task)
        _check(self.num_inner_steps >= 1, p + "num_inner_steps", "must be >= 1", self.num_inner_steps)
        _check(self.inner_lr > 0, p + "inner_lr", "must be > 0", self.inner_lr)
        _check(self.inner_estimator in INNER_ESTIMATORS, p + "inner_estimator", f"must be one of {INNER_ESTIMATORS}", self.inner_estimator)
        _check(self.outer in ("trpo", "ppo"), p + "outer", "must be 'trpo' or 'ppo'", self.outer)
        _check(self.max_kl > 0, p + "max_kl", "must be > 0", self.max_kl)
        _check(self.cg_iters >= 1, p + "cg_iters", "must be >= 1", self.cg_iters)
        _check(self.cg_damping >= 0, p + "cg_damping", "must be >= 0", self.cg_damping)
        _check(0 < self.backtrack_ratio < 1, p + "backtrack_ratio", "must be in (0, 1)", self.backtrack_ratio)
        _check(self.max_backtracks >= 1, p + "max_backtracks", "must be >= 1", self.max_backtracks)
        _check(self.ppo_epochs >= 1, p + "ppo_epochs", "must be >= 1", self.ppo_epochs)
        _check(self.ppo_lr > 0, p + "ppo_lr", "must be > 0", self.ppo_lr)
        _check(0 < self.ppo_clip < 1, p + "ppo_clip", "must be in (0, 1)", self.ppo_clip)
        _check(0 <= self.gamma <= 1, p + "gamma", "must be in [0, 1]", self.gamma)
        _check(0 <= self.gae_lambda <= 1, p + "gae_lambda", "must be in [0, 1]", self.gae_lambda)
        _check(len(self.hidden_sizes) >= 1 and all(h >= 1 for h in self.hidden_sizes), p + "hidden_sizes", "must be positive layer widths", self.hidden_sizes)
        _check(self.activation in ACTIVATIONS, p + "activation", f"must be one of {sorted(ACTIVATIONS)}", self.activation)
        _check(self.init_std > 0, p + "init_std", "must be > 0", self.init_std)
        _check(self.eval_adapt_steps >= 0, p + "eval_adapt_steps", "must be >= 0", self.eval_adapt_steps)
        _check(self.eval_episodes_per_task >= 1, p + "eval_episodes_per_task", "must be >= 1", self.eval_episodes_per_task)


@dataclasses.dataclass(frozen=True)
class RL2Config:
    """RL² (Duan et al. 2016): a GRU policy over whole trials, trained with PPO."""

    trials_per_task: int = 1
    """Trials sampled per task per meta-iteration (each starts from a zero recurrent state)."""
    episodes_per_trial: int | None = None
    """Episodes per trial during meta-training (None: the environment's)."""
    hidden_size: int = 128
    """GRU width."""
    embed_sizes: tuple[int, ...] = (64,)
    """MLP layers applied to (obs, previous action, previous reward, done) before the GRU (may be empty: --rl2.embed-sizes)."""
    head_sizes: tuple[int, ...] = (64,)
    """Hidden layers of the policy and value heads on the GRU output (may be empty)."""
    activation: Literal["relu", "tanh", "elu", "gelu", "swish"] = "tanh"
    """Activation of the embedding and head MLPs."""
    shared_core: bool = True
    """One GRU for policy and value; --rl2.no-shared-core gives the value its own GRU."""
    init_std: float = 1.0
    """Initial standard deviation of the Gaussian policy (continuous actions)."""
    lr: float = 3e-4
    """Adam learning rate."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clipping (0: off)."""
    ppo_epochs: int = 4
    """PPO passes over the meta-batch per meta-iteration."""
    num_minibatches: int = 4
    """Minibatches per epoch; whole trials are split, so it must divide meta_batch_size * trials_per_task."""
    clip_eps: float = 0.2
    """PPO ratio clipping epsilon."""
    value_clip_eps: float = 0.0
    """Clip the value update around the old values (0: no value clipping)."""
    value_coef: float = 0.5
    """Weight of the value loss."""
    entropy_coef: float = 0.01
    """Weight of the entropy bonus."""
    gamma: float = 0.99
    """Discount, applied across the episodes of a trial (the trial is one RL² episode)."""
    gae_lambda: float = 0.95
    """GAE lambda, across episode boundaries within the trial."""
    normalize_advantages: bool = True
    """Standardise advantages per minibatch."""
    reward_scale: float = 1.0
    """Rewards are multiplied by this for the value targets and advantages (logged returns are unscaled);
    keeps value losses O(1) when trial returns are large (e.g. tabular_mdp: 0.1)."""
    bptt_truncation: int = 0
    """Truncated BPTT: cut the gradient through the GRU state every this many steps of the trial (0: full trial)."""
    eval_trials_per_task: int = 4
    """Meta-test: trials per held-out task (the per-episode return is averaged over them)."""
    eval_episodes: int | None = None
    """Meta-test: episodes per trial (None: as in training), e.g. longer to test generalisation."""
    eval_deterministic: bool = False
    """Meta-test with the mode of the action distribution instead of sampling."""

    def validate(self, prefix: str = "rl2", meta_batch_size: int | None = None) -> None:
        p = prefix + "."
        _check(self.trials_per_task >= 1, p + "trials_per_task", "must be >= 1", self.trials_per_task)
        _check(self.episodes_per_trial is None or self.episodes_per_trial >= 1, p + "episodes_per_trial", "must be >= 1", self.episodes_per_trial)
        _check(self.hidden_size >= 1, p + "hidden_size", "must be >= 1", self.hidden_size)
        _check(all(h >= 1 for h in self.embed_sizes), p + "embed_sizes", "must be positive layer widths", self.embed_sizes)
        _check(all(h >= 1 for h in self.head_sizes), p + "head_sizes", "must be positive layer widths", self.head_sizes)
        _check(self.activation in ACTIVATIONS, p + "activation", f"must be one of {sorted(ACTIVATIONS)}", self.activation)
        _check(self.init_std > 0, p + "init_std", "must be > 0", self.init_std)
        _check(self.lr > 0, p + "lr", "must be > 0", self.lr)
        _check(self.max_grad_norm >= 0, p + "max_grad_norm", "must be >= 0", self.max_grad_norm)
        _check(self.ppo_epochs >= 1, p + "ppo_epochs", "must be >= 1", self.ppo_epochs)
        _check(self.num_minibatches >= 1, p + "num_minibatches", "must be >= 1", self.num_minibatches)
        if meta_batch_size is not None:
            trials = meta_batch_size * self.trials_per_task
            _check(trials % self.num_minibatches == 0, p + "num_minibatches",
                   f"must divide meta_batch_size * trials_per_task = {trials}", self.num_minibatches)
        _check(0 < self.clip_eps < 1, p + "clip_eps", "must be in (0, 1)", self.clip_eps)
        _check(self.value_clip_eps >= 0, p + "value_clip_eps", "must be >= 0", self.value_clip_eps)
        _check(self.value_coef >= 0, p + "value_coef", "must be >= 0", self.value_coef)
        _check(self.entropy_coef >= 0, p + "entropy_coef", "must be >= 0", self.entropy_coef)
        _check(0 <= self.gamma <= 1, p + "gamma", "must be in [0, 1]", self.gamma)
        _check(0 <= self.gae_lambda <= 1, p + "gae_lambda", "must be in [0, 1]", self.gae_lambda)
        _check(self.reward_scale > 0, p + "reward_scale", "must be > 0", self.reward_scale)
        _check(self.bptt_truncation >= 0, p + "bptt_truncation", "must be >= 0", self.bptt_truncation)
        _check(self.eval_trials_per_task >= 1, p + "eval_trials_per_task", "must be >= 1", self.eval_trials_per_task)
        _check(self.eval_episodes is None or self.eval_episodes >= 1, p + "eval_episodes", "must be >= 1", self.eval_episodes)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A meta-training run: `python -m jmeta.train --algo maml --env point_nav [flags]`."""

    algo: Literal["maml", "rl2"] = "maml"
    """Meta-learning algorithm."""
    env: str = "point_nav"
    """Environment name (see jmeta.list_envs())."""
    env_variant: str = "default"
    """Published definition of the environment to use (see jmeta.list_variants(env))."""
    env_horizon: int | None = None
    """Override the environment's episode horizon (None: the variant's)."""
    env_physics: Literal["auto", "mjx", "mujoco"] = "auto"
    """Physics path of MuJoCo envs: "mujoco" (C engine via a host callback, fastest on CPU), "mjx"
    (pure JAX, for accelerators) or "auto" (mujoco on CPU, mjx elsewhere). Only for MuJoCo envs."""
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
    """Show a live progress bar."""
    plots: bool = True
    """Write learning-curve and adaptation-curve PNGs at the end."""
    maml: MAMLConfig = dataclasses.field(default_factory=MAMLConfig)
    """MAML hyperparameters."""
    rl2: RL2Config = dataclasses.field(default_factory=RL2Config)
    """RL² hyperparameters."""

    def validate(self) -> None:
        from jmeta.algos import list_algorithms
        from jmeta.envs import list_envs, list_variants

        _check(self.algo in list_algorithms(), "algo", f"must be one of {list_algorithms()}", self.algo)
        _check(self.env in list_envs(), "env", f"must be one of {list_envs()}", self.env)
        variants = list_variants(self.env)
        _check(self.env_variant in variants, "env_variant", f"must be one of {variants} for {self.env}", self.env_variant)
        _check(self.env_horizon is None or self.env_horizon >= 1, "env_horizon", "must be >= 1", self.env_horizon)
        if self.env_physics != "auto":
            from jmeta.envs.registry import variant_params

            has_physics = any(f.name == "physics" for f in dataclasses.fields(variant_params(self.env, self.env_variant)))
            _check(has_physics, "env_physics", f"{self.env} is a pure-JAX env; only MuJoCo envs take it", self.env_physics)
        _check(self.action_scale > 0, "action_scale", "must be > 0", self.action_scale)
        _check(self.meta_iters >= 1, "meta_iters", "must be >= 1", self.meta_iters)
        _check(self.meta_batch_size >= 1, "meta_batch_size", "must be >= 1", self.meta_batch_size)
        _check(self.chunk_size >= 1, "chunk_size", "must be >= 1", self.chunk_size)
        _check(self.eval_every >= 0, "eval_every", "must be >= 0", self.eval_every)
        _check(self.eval_tasks >= 1, "eval_tasks", "must be >= 1", self.eval_tasks)
        _check(self.checkpoint_every >= 1, "checkpoint_every", "must be >= 1", self.checkpoint_every)
        _check(self.keep_checkpoints >= 1, "keep_checkpoints", "must be >= 1", self.keep_checkpoints)
        self.algo_config.validate(self.algo, self.meta_batch_size)

    @property
    def algo_config(self) -> MAMLConfig | RL2Config:
        return getattr(self, self.algo)

    def env_overrides(self) -> dict[str, Any]:
        overrides: dict[str, Any] = {} if self.env_horizon is None else {"horizon": self.env_horizon}
        if self.env_physics != "auto":
            overrides["physics"] = self.env_physics
        return overrides

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = dict(data)
        nested = {"maml": MAMLConfig, "rl2": RL2Config}
        for name, typ in nested.items():
            if name in data and isinstance(data[name], dict):
                sub = dict(data[name])
                for key in ("hidden_sizes", "embed_sizes", "head_sizes"):
                    if key in sub:
                        sub[key] = tuple(sub[key])
                data[name] = typ(**sub)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"config has unknown field(s): {', '.join(unknown)}")
        return cls(**data)

"""The host loop: compiled chunks of meta-iterations, evaluation, logging, checkpoints, resume.

Each chunk is one compiled call that runs ``chunk_size`` meta-iterations with ``lax.scan``; the
key of iteration ``i`` is ``fold_in(train_key, i)``, so a run interrupted at a chunk boundary and
resumed from its checkpoint computes exactly the same iterations as an uninterrupted run.
SIGINT/SIGTERM are caught: the current chunk finishes, a checkpoint is written, the run stops.
A non-finite metric or parameter stops the run: inside the compiled chunk, the state stops
advancing at the first non-finite iteration (so the chunk returns the last good state without a
second copy of the state being kept on device), the good iterations are logged, that state is
saved, and the run raises.

The trainer knows no algorithm: it uses the :class:`~jmeta.algos.base.MetaLearner` interface
(``init``, ``meta_step``, ``evaluate``, ``headline``, ``env_steps_per_iteration``). A run's device
mesh (``config.devices``, :mod:`jmeta.sharding`) enters through :func:`build` (the algorithm's
``task_sharding``); the state is placed replicated and the evaluation bank split.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jmeta
from jmeta import distributed, plots, sharding
from jmeta._xla_flags import enable_compilation_cache, hot_path_compiler_options
from jmeta.algos import make_algorithm
from jmeta.algos.base import MetaLearner
from jmeta.checkpoint import Checkpointer
from jmeta.config import TrainConfig
from jmeta.envs import RescaleActions, make
from jmeta.envs.base import MetaEnv
from jmeta.errors import CheckpointError, ConfigError, NonFiniteError
from jmeta.evaluation import EvalResult, SeedsEvalResult, make_evaluator
from jmeta.logging import (
    ConsoleLog,
    LibraryLogFile,
    MetricsLog,
    ProgressBar,
    TensorBoardLog,
    read_metrics,
    truncate_metrics,
)
from jmeta.rollout import debug_nonfinite
from jmeta.spaces import Box
from jmeta.tasks import TaskBank, TaskDistribution, evaluation_bank

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
RUN_INFO_FILE = "run_info.json"
CONSOLE_LOG_FILE = "console.log"

#: Config fields that define the compiled program and the state; they cannot change on resume.
_FROZEN_ON_RESUME = ("algo", "env", "env_variant", "env_set", "env_horizon", "rescale_actions", "action_scale", "seed",
                     "meta_batch_size", "num_seeds")

#: Where a ``--num-seeds`` run keeps each seed's own metrics.jsonl and eval.json: seeds/seed_{seed}/.
SEEDS_DIR = "seeds"


@dataclasses.dataclass
class RunResult:
    """What a finished (or interrupted) run leaves behind."""

    run_dir: str
    state: Any
    iteration: int
    interrupted: bool
    final_eval: EvalResult | None


def build(config: TrainConfig, task_sharding: Any = None) -> tuple[MetaEnv, TaskDistribution, MetaLearner]:
    """Environment, task distribution and algorithm for a validated config.

    ``task_sharding``: a sharding of the task axis over a device mesh (None: one device); every
    task batch the algorithm samples is constrained to it.
    """
    env, dist = _make_env(config, config.env_overrides())
    algo = make_algorithm(config.algo, env, dist, config.algo_config, config.meta_batch_size,
                          task_sharding=task_sharding)
    return env, dist, algo


def _make_env(config: TrainConfig, overrides: dict[str, Any]) -> tuple[MetaEnv, TaskDistribution]:
    env, dist = make(config.env, config.env_variant, **overrides)
    if config.rescale_actions and isinstance(env.spec.action_space, Box):
        env = RescaleActions(env, config.action_scale)
    return env, dist


def build_meta_test(config: TrainConfig, algo: MetaLearner, dist: TaskDistribution,
                    num_tasks: int | None = None) -> tuple[MetaLearner, TaskBank]:
    """The learner that runs the meta-test and its held-out bank (``num_tasks``, default
    ``config.eval_tasks``). Without ``eval_env_set`` these are ``algo`` and the training
    distribution's evaluation bank; with it, ``algo`` on the meta-test env (e.g. the sparse reward)
    and that env's distribution's bank."""
    size = config.eval_tasks if num_tasks is None else num_tasks
    if not config.eval_env_set:
        return algo, evaluation_bank(dist, size)
    env, eval_dist = _make_env(config, config.eval_env_overrides())
    return dataclasses.replace(algo, env=env), evaluation_bank(eval_dist, size)


def versions() -> dict[str, str]:
    """The versions of jmeta and the libraries a checkpoint depends on (stored in its metadata)."""
    import flax
    import optax

    return {"jmeta": jmeta.__version__, "jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__}


def _checkpoint_identity(config: TrainConfig) -> dict[str, Any]:
    """Metadata entries a checkpoint must share with the run restoring it."""
    return {
        "algo": config.algo,
        "env": config.env,
        "env_variant": config.env_variant,
        "algo_config": json.loads(json.dumps(dataclasses.asdict(config.algo_config))),
    }


def load_run_config(run_dir: str) -> TrainConfig:
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise CheckpointError(f"{run_dir} is not a jmeta run directory (no {CONFIG_FILE})")
    with open(path, encoding="utf-8") as f:
        try:
            return TrainConfig.from_dict(json.load(f))
        except (json.JSONDecodeError, TypeError) as exc:
            raise CheckpointError(f"{path} is not a valid run config: {exc}") from exc


def check_resume_compatible(saved: TrainConfig, requested: TrainConfig) -> None:
    for field in _FROZEN_ON_RESUME:
        if getattr(saved, field) != getattr(requested, field):
            raise ConfigError(f"{field}: cannot change on resume ({getattr(saved, field)!r} in the run, {getattr(requested, field)!r} requested)")
    if saved.algo_config != requested.algo_config:
        raise ConfigError(f"{saved.algo}: algorithm settings cannot change on resume")


def _new_run_dir(config: TrainConfig) -> str:
    """Creates the run directory (process 0; the others get the same path: process 0's clock names it)."""
    stamp = datetime.datetime.fromtimestamp(distributed.broadcast_int(int(time.time())))
    name = config.run_name or "{}__{}__{}__{}".format(config.env, config.algo, config.seed, stamp.strftime("%Y%m%d-%H%M%S"))
    path = os.path.abspath(os.path.join(config.logdir, name))
    if not distributed.is_main():
        return path
    if os.path.exists(os.path.join(path, CONFIG_FILE)):
        raise ConfigError(f"run_name: {path} already holds a run; use --resume {path} or another name")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"logdir: cannot create the run directory {path}: {exc.strerror or exc}") from None
    return path


class _RunLock:
    """An exclusive lock on a run directory for the life of a training process (released by the OS
    if the process dies), so the same run cannot be trained by two processes at once."""

    def __init__(self, run_dir: str):
        self.path = os.path.join(run_dir, ".lock")
        self._fd: int | None = None

    def __enter__(self):
        import fcntl

        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(f"logdir: cannot write in the run directory {os.path.dirname(self.path)}: "
                              f"{exc.strerror or exc}") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._fd)
            self._fd = None
            raise ConfigError(f"resume: {os.path.dirname(self.path)} is being trained by another process; "
                              "wait for it to stop (or stop it) before resuming") from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, str(os.getpid()).encode())
        return self

    def __exit__(self, *exc):
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock
            self._fd = None
        return False


def _check_writable(run_dir: str, checkpointer: Checkpointer) -> None:
    """Refuses (one line) before anything compiles when logs or checkpoints cannot be written."""
    for name in (CONFIG_FILE, METRICS_FILE):
        path = os.path.join(run_dir, name)
        if os.path.exists(path) and not os.access(path, os.W_OK):
            raise ConfigError(f"logdir: {path} is not writable")
    checkpointer.check_writable()


def _set_aside(checkpointer: Checkpointer, run_dir: str, steps: list[int]) -> list[str]:
    """Moves corrupt checkpoint steps out of the way (kept for inspection), so that the run can save
    those iterations again. Returns the new locations."""
    moved = []
    target = os.path.join(run_dir, "corrupt_checkpoints")
    for step in steps:
        src = os.path.join(checkpointer.directory, str(step))
        if os.path.exists(src):
            os.makedirs(target, exist_ok=True)
            dst = os.path.join(target, f"{step}-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S-%f')}")
            os.replace(src, dst)
            moved.append(dst)
    checkpointer.reload()
    return moved


def _all_finite(tree) -> jax.Array:
    """True when every floating leaf of ``tree`` is finite (traceable)."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def run_seeds(config: TrainConfig) -> tuple[int, ...]:
    """The seeds a run trains: ``(seed,)``, or ``seed, seed + 1, ..., seed + num_seeds - 1``."""
    return tuple(range(config.seed, config.seed + config.num_seeds))


def run_keys(config: TrainConfig) -> tuple[jax.Array, jax.Array]:
    """``(init_key, train_key)`` of a run. With ``num_seeds`` > 1 both are stacks [num_seeds], entry
    ``k`` being exactly the keys of a one-seed run with ``seed + k`` (so each seed of a many-seed
    run trains what that one-seed run trains)."""
    pairs = [jax.random.split(jax.random.key(seed)) for seed in run_seeds(config)]
    if config.num_seeds == 1:
        return pairs[0][0], pairs[0][1]
    return jnp.stack([p[0] for p in pairs]), jnp.stack([p[1] for p in pairs])


def init_fn(algo: MetaLearner, num_seeds: int) -> Callable[[jax.Array], Any]:
    """``algo.init``, vmapped over a stack of keys for ``num_seeds`` > 1 (one train state per seed,
    stacked along a leading axis)."""
    return algo.init if num_seeds == 1 else jax.vmap(algo.init)


def _iteration(state: Any) -> int:
    """The iteration counter of a train state (of the first seed of a stacked one: all are equal)."""
    return int(np.asarray(jax.device_get(state.iteration)).reshape(-1)[0])


def select_seed(state: Any, index: int) -> Any:
    """Seed ``index``'s train state out of a stacked many-seed state."""
    return jax.tree_util.tree_map(lambda x: x[index], state)


def _make_chunk_fn(algo: MetaLearner, num_seeds: int = 1):
    """``(state, train_key, length) -> (state, metrics [length], finite [length])``, compiled per static length.

    Once an iteration produces a non-finite metric or parameter, the state stops advancing: the
    chunk returns the last good state and ``finite`` marks the iterations that were good. The
    input state is donated, so no second copy of a large state (e.g. replay buffers) is kept.
    With ``num_seeds`` > 1 the state and ``train_key`` are stacks over seeds, each iteration is the
    meta-iteration vmapped over them (metrics [length, num_seeds]), and a non-finite value in any
    seed stops every seed at the same iteration.
    """
    meta_step = algo.meta_step if num_seeds == 1 else jax.vmap(algo.meta_step)
    fold_in = jax.random.fold_in if num_seeds == 1 else jax.vmap(jax.random.fold_in)

    def run_chunk(state, train_key, length):
        def body(carry, _):
            s, ok = carry
            new, metrics = meta_step(s, fold_in(train_key, s.iteration))
            ok = ok & _all_finite((new.params, metrics))
            s = jax.tree_util.tree_map(lambda n, o: jnp.where(ok, n, o), new, s)
            return (s, ok), (metrics, ok)

        (state, _), (metrics, finite) = jax.lax.scan(body, (state, jnp.asarray(True)), None, length=length)
        return state, metrics, finite

    return jax.jit(run_chunk, static_argnums=2, donate_argnums=0, compiler_options=hot_path_compiler_options())


class _StopFlag:
    """Turns SIGINT/SIGTERM into a flag checked between chunks (restored on exit)."""

    def __init__(self):
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        if self.signal is not None:  # a second signal: stop hard
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


def _crossed(every: int, iteration: int, length: int) -> bool:
    """True when a multiple of ``every`` lies in ``(iteration - length, iteration]``."""
    return every > 0 and iteration // every > (iteration - length) // every


def _status(record: dict[str, Any], headline: dict[str, str]) -> str:
    parts = [f"{label} {record[name]:.3g}" for name, label in headline.items() if name in record]
    if "perf/env_steps_per_s" in record:
        parts.append(f"{record['perf/env_steps_per_s']:.3g} steps/s")
    return " | ".join(parts)


#: Called with the records a chunk (or an evaluation) just logged, e.g. to draw a live plot in a
#: notebook: ``on_records(records)``; each record is a metrics.jsonl line as a dict.
RecordsCallback = Callable[[list[dict[str, Any]]], None]


def train(config: TrainConfig, stop_after: int | None = None, on_records: RecordsCallback | None = None) -> RunResult:
    """Runs (or resumes, with ``config.resume``) a meta-training run.

    ``stop_after``: stop (with a checkpoint, as on SIGINT) once this many iterations are done;
    used by tests and by callers that train in stages. ``on_records``: called after each chunk and
    each evaluation with the records just logged (a live plot in a notebook). The config's
    ``compilation_cache`` turns on JAX's persistent compilation cache first.
    """
    distributed.initialize(config.distributed)  # before anything runs on a device
    config.validate()
    if config.compilation_cache:
        enable_compilation_cache()
    mesh = _run_mesh(config)
    env, dist, algo = build(config, task_sharding=sharding.task_sharding(mesh))
    _check_physics_on_mesh(env, mesh)
    if config.resume:
        run_dir = os.path.abspath(config.resume)
        check_resume_compatible(load_run_config(run_dir), config)
    else:
        run_dir = _new_run_dir(config)
    distributed.barrier("jmeta: run directory")
    main = distributed.is_main()  # process 0 alone writes the run directory
    debug = debug_nonfinite() if config.debug_nonfinite else contextlib.nullcontext()
    with (_RunLock(run_dir) if main else contextlib.nullcontext()), \
            (ConsoleLog(os.path.join(run_dir, CONSOLE_LOG_FILE)) if main else contextlib.nullcontext()) as console, \
            (LibraryLogFile(os.path.join(run_dir, "errors.log")) if main else contextlib.nullcontext()), \
            debug, sharding.use_mesh(mesh):
        progress = ProgressBar(config.meta_iters, 0, config.progress and main, f"{config.algo} on {config.env}", console)
        try:
            return _train_locked(config, algo, dist, run_dir, stop_after, progress,
                                 on_records or (lambda records: None), mesh)
        finally:
            progress.close()


class _Eta:
    """Seconds left, from the measured time per meta-iteration (compilation excluded) and per
    evaluation; None until a chunk has been timed."""

    def __init__(self, total: int, eval_every: int):
        self.total, self.eval_every = total, eval_every
        self._train_s = 0.0
        self._iters = 0
        self._eval_s: float | None = None

    def chunk(self, iterations: int, seconds: float) -> None:
        self._train_s += seconds
        self._iters += iterations

    def evaluation(self, seconds: float) -> None:
        self._eval_s = seconds if self._eval_s is None else 0.5 * (self._eval_s + seconds)

    def seconds_left(self, done: int) -> float | None:
        if self._iters == 0:
            return None
        left = (self.total - done) * self._train_s / self._iters
        evals = 1  # the final evaluation, then one at each multiple of eval_every before the end
        if self.eval_every > 0 and done < self.total:
            evals += (self.total - 1) // self.eval_every - done // self.eval_every
        return left + evals * (self._eval_s or 0.0)


def _next_length(config: TrainConfig, iteration: int) -> int:
    """The next chunk's length: ``chunk_size``, cut at the end of the run and at the next multiple of
    ``eval_every`` (so evaluations happen exactly at those iterations)."""
    length = min(config.chunk_size, config.meta_iters - iteration)
    if config.eval_every > 0:
        length = min(length, config.eval_every - iteration % config.eval_every)
    return length


def _eval_line(iteration: int, result: EvalResult | SeedsEvalResult) -> str:
    many = isinstance(result, SeedsEvalResult)
    spread = result.ci95 if many else result.stderr
    points = [f"{k}: {m:.3g} ± {s:.2g}" for k, (m, s) in enumerate(zip(result.mean, spread, strict=True))]
    if len(points) > 6:
        points = [*points[:3], "...", *points[-2:]]
    first = result.per_seed[0] if many else result
    extras = [f"{name} {np.mean([r.extras[name].mean() for r in (result.per_seed if many else [result])]):.3g}"
              for name, values in first.extras.items() if values.shape == first.per_task.shape]
    over = f", mean ± 95% CI over {len(result.seeds)} seeds" if many else ""
    return (f"eval @ iteration {iteration} ({result.num_tasks} held-out tasks{over}, return by {result.axis}): "
            + ", ".join(points) + (f" | {', '.join(extras)}" if extras else ""))


def _run_mesh(config: TrainConfig):
    """The run's task-axis mesh (None on one device), with the batch sizes checked against it."""
    mesh = sharding.task_mesh(config.devices)
    sharding.check_divisible("meta_batch_size", config.meta_batch_size, mesh)
    return mesh


def _check_physics_on_mesh(env: MetaEnv, mesh) -> None:
    """The MuJoCo C engine path steps the batch on the host through one callback: one device only."""
    from jmeta.envs.wrappers import unwrap

    physics = getattr(unwrap(env), "physics", None)
    if mesh is not None and getattr(physics, "name", None) == "mujoco":
        raise ConfigError(f"devices: the MuJoCo C engine path (env_physics mujoco, the CPU default) steps every "
                          f"task on the host for one device; use --devices 1, or --env-physics mjx to split "
                          f"{env.spec.name}'s tasks over {mesh.devices.size} devices")


def _train_locked(config: TrainConfig, algo: MetaLearner, dist: TaskDistribution, run_dir: str,
                  stop_after: int | None, progress: ProgressBar, on_records: RecordsCallback,
                  mesh: Any = None) -> RunResult:
    from jmeta.provenance import append_session, session_record

    identity = _checkpoint_identity(config)
    main = distributed.is_main()
    checkpointer = Checkpointer(os.path.join(run_dir, "checkpoints"), config.keep_checkpoints)
    if main:
        _check_writable(run_dir, checkpointer)
        with open(os.path.join(run_dir, CONFIG_FILE), "w", encoding="utf-8") as f:
            f.write(config.to_json())
        append_session(os.path.join(run_dir, RUN_INFO_FILE), session_record(algo.env))

    seeds = run_seeds(config)
    many = len(seeds) > 1
    init_key, train_key = run_keys(config)
    init = init_fn(algo, len(seeds))
    abstract = jax.eval_shape(init, init_key)
    if mesh is not None:  # restored straight onto the mesh's devices (every process' on many hosts)
        abstract = jax.tree_util.tree_map(lambda a, where: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=where),
                                          abstract, sharding.state_shardings(abstract, mesh, many))
    if config.resume and not checkpointer.all_steps():
        print(f"warning: {run_dir} has no checkpoint yet (stopped before its first save); starting it from "
              "iteration 0", file=sys.stderr)
        state = init(init_key)
    elif config.resume:
        progress.stage("restoring checkpoint")
        state, _ = checkpointer.restore(abstract, expected_meta=identity)
        if checkpointer.skipped:
            skipped = [step for step, _ in checkpointer.skipped]
            _set_aside(checkpointer, run_dir, skipped)
            print(f"warning: checkpoint(s) {', '.join(map(str, skipped))} corrupt or incomplete (moved to "
                  f"{os.path.join(run_dir, 'corrupt_checkpoints')}; details in {checkpointer.error_log}); "
                  f"resuming from iteration {_iteration(state)}", file=sys.stderr)
    else:
        state = init(init_key)
    state = sharding.place_state(state, mesh, many)  # replicated, except per-task buffers: split
    start = _iteration(state)
    metrics_path = os.path.join(run_dir, METRICS_FILE)
    seed_dirs = [os.path.join(run_dir, SEEDS_DIR, f"seed_{seed}") for seed in seeds] if many and main else []
    for path in ([metrics_path] if main else []) + [os.path.join(d, METRICS_FILE) for d in seed_dirs]:
        truncate_metrics(path, start)  # records past the restored checkpoint are rolled back
    logged_evals = {int(r["iteration"]) for r in read_metrics(metrics_path, "eval")} if os.path.exists(metrics_path) else set()
    seed_logs = [MetricsLog(os.path.join(d, METRICS_FILE)) for d in seed_dirs]
    loggers: list[Any] = [MetricsLog(metrics_path)] if main else []
    if config.tensorboard and main:
        loggers.append(TensorBoardLog(os.path.join(run_dir, "tensorboard"),
                                      purge_step=start + 1 if config.resume else None))
    if config.wandb and main:
        from jmeta.logging import WandbLog

        loggers.append(WandbLog(run_dir, config, resume=bool(config.resume)))
    meta_algo, bank = build_meta_test(config, algo, dist)
    evaluator = make_evaluator(meta_algo, TaskBank(sharding.shard_tasks(bank.tasks, mesh)), seeds if many else None)
    chunk_fn = _make_chunk_fn(algo, len(seeds))
    steps_per_iter = algo.env_steps_per_iteration() * len(seeds)
    meta = {"config": config.to_dict(), "versions": versions(), **identity}
    eta = _Eta(config.meta_iters, config.eval_every)

    def write(records: list[dict[str, Any]], per_seed: list[list[dict[str, Any]]] | None = None) -> None:
        """``records`` to the run's loggers (with many seeds: the means over seeds) and ``per_seed[k]``
        to seed ``k``'s own metrics.jsonl."""
        for seed_log, seed_records in zip(seed_logs, per_seed or [], strict=False):
            for record in seed_records:
                seed_log.write(record, int(record["iteration"]))
        for record in records:
            for logger in loggers:
                logger.write(record, int(record["iteration"]))
        if records:
            on_records(records)

    def save(s):
        progress.stage("saving checkpoint")
        try:
            checkpointer.save(_iteration(s), s, meta)
        except CheckpointError as exc:
            kept = checkpointer.all_steps() if os.path.isdir(checkpointer.directory) else []
            raise CheckpointError(f"{exc}; the run stopped at iteration {_iteration(s)}; checkpoints kept: "
                                  f"{kept or 'none'}") from None

    def run_eval(s) -> EvalResult | SeedsEvalResult:
        step = _iteration(s)
        if not evaluator.compiled:
            progress.stage("compiling the meta-test")
            t0 = time.perf_counter()
            evaluator.compile(s)
            write([{"kind": "perf", "iteration": step, "perf/eval_compile_s": time.perf_counter() - t0}])
        progress.stage("evaluating")
        t0 = time.perf_counter()
        result = evaluator(s)
        seconds = time.perf_counter() - t0
        eta.evaluation(seconds)
        if step not in logged_evals:  # a resumed run that had already logged this evaluation: once only
            per_seed = [[{"kind": "eval", "iteration": step, **r.metrics()}] for r in result.per_seed] if many else None
            write([{"kind": "eval", "iteration": step, **result.metrics(), "perf/eval_s": seconds}], per_seed)
            logged_evals.add(step)
            progress.message(_eval_line(step, result))
        return result

    end = config.meta_iters if stop_after is None else min(config.meta_iters, stop_after)
    progress.update(start, "", None)
    interrupted = False
    last_saved = start if config.resume else None
    compiled: dict[int, Any] = {}  # chunk length -> AOT-compiled executable
    iteration = start
    try:
        with _StopFlag() as stop:
            if start == 0 and config.eval_every > 0:
                run_eval(state)  # the starting point of the evaluation curve
            while iteration < end:
                length = _next_length(config, iteration)
                if length not in compiled:
                    progress.stage(f"compiling {length} meta-iteration{'s' if length > 1 else ''}")
                    t0 = time.perf_counter()
                    compiled[length] = chunk_fn.lower(state, train_key, length).compile()
                    write([{"kind": "perf", "iteration": iteration, "perf/compile_s": time.perf_counter() - t0,
                            "chunk_length": length}])
                progress.stage("training")
                t0 = time.perf_counter()
                state, chunk_metrics, finite = compiled[length](state, train_key)
                chunk_metrics, finite = distributed.to_host((chunk_metrics, finite))
                elapsed = time.perf_counter() - t0
                good = int(finite.sum())  # iterations before the first non-finite one
                steps_per_s = steps_per_iter * length / elapsed
                records = [{"kind": "train", "iteration": iteration + j + 1,
                            "env_steps": (iteration + j + 1) * steps_per_iter,
                            **{k: float(np.mean(v[j])) for k, v in chunk_metrics.items()},
                            "perf/env_steps_per_s": steps_per_s,
                            "perf/iters_per_s": length / elapsed} for j in range(good)]
                per_seed = [[{"kind": "train", "iteration": iteration + j + 1,
                              "env_steps": (iteration + j + 1) * steps_per_iter // len(seeds),
                              **{k: float(v[j, i]) for k, v in chunk_metrics.items()}} for j in range(good)]
                            for i in range(len(seeds))] if many else None
                write(records, per_seed)
                if good < length:
                    bad = sorted(k for k, v in chunk_metrics.items() if not np.all(np.isfinite(v[good])))
                    if many:
                        bad_seeds = [seed for i, seed in enumerate(seeds)
                                     if not all(np.isfinite(v[good, i]) for v in chunk_metrics.values())]
                        bad = [*bad, f"seed(s) {', '.join(map(str, bad_seeds)) or 'parameters only'}"]
                    iteration += good
                    if last_saved != iteration:
                        save(state)  # the chunk returned the last good state
                    raise NonFiniteError(
                        f"non-finite values in training at iteration {iteration + 1} ({', '.join(bad) or 'parameters'}); "
                        f"stopped; last good checkpoint is iteration {iteration} in {checkpointer.directory}"
                    )
                iteration += length
                eta.chunk(length, elapsed)
                progress.update(iteration, _status(records[-1], algo.headline()), eta.seconds_left(iteration))
                if _crossed(config.eval_every, iteration, length) and iteration < config.meta_iters:
                    run_eval(state)
                if _crossed(config.checkpoint_every, iteration, length) or iteration >= config.meta_iters:
                    save(state)
                    last_saved = iteration
                if distributed.agree_any(stop.signal is not None) and iteration < end:
                    interrupted = True
                    break
            if iteration < config.meta_iters and last_saved != iteration:
                save(state)  # interrupted or stop_after: keep everything done so far
                last_saved = iteration
            interrupted = interrupted or iteration < config.meta_iters

        final_eval = None
        if not interrupted:
            final_eval = run_eval(state)
        if not interrupted and main:
            _write_json(os.path.join(run_dir, "eval.json"), {"iteration": iteration, **final_eval.to_dict()})
            for seed_dir, result in zip(seed_dirs, final_eval.per_seed if many else [], strict=False):
                _write_json(os.path.join(seed_dir, "eval.json"), {"iteration": iteration, **result.to_dict()})
            if config.plots:
                progress.stage("writing plots")
                write_plots(run_dir, config, final_eval, algo.headline())
            if config.report:
                progress.stage("drawing rollouts and writing the report")
                _write_report(run_dir, algo, select_seed(state, 0) if many else state,
                              viewers=distributed.process_count() == 1)
        progress.stage("done" if not interrupted else "stopped")
    finally:
        for logger in [*loggers, *seed_logs]:
            logger.close()
        checkpointer.close()
    return RunResult(run_dir=run_dir, state=state, iteration=iteration, interrupted=interrupted, final_eval=final_eval)


def _write_json(path: str, payload: dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2)


def _write_report(run_dir: str, algo: MetaLearner, state: Any, viewers: bool = True) -> None:
    """report.html with the rollout viewers (``viewers``; not drawn in a multi-process run, where the
    state lives on every process: ``python -m jmeta.visualize --run DIR`` draws them afterwards);
    a failure here is a warning, never a lost run."""
    from jmeta.report import write_report

    try:
        path = write_report(run_dir, viewers=viewers, algo=algo, state=state)
    except Exception as exc:  # noqa: BLE001 (the run is trained and saved; the report is a view of it)
        print(f"warning: the report could not be written ({type(exc).__name__}: {exc}); "
              f"retry with: python -m jmeta.report --run {run_dir}", file=sys.stderr)
    else:
        print(f"report: {path}")


def write_plots(run_dir: str, config: TrainConfig, final_eval: EvalResult | SeedsEvalResult | None,
                headline: dict[str, str]) -> list[str]:
    """plots/learning_curve.png and plots/adaptation_curve.png. For a many-seed run: the means over
    seeds, the evaluations with their 95% confidence interval over seeds."""
    metrics_path = os.path.join(run_dir, METRICS_FILE)
    seeds = run_seeds(config)
    title = (f"{config.algo} on {config.env} ({config.env_variant}), seed {config.seed}" if len(seeds) == 1 else
             f"{config.algo} on {config.env} ({config.env_variant}), seeds {seeds[0]}-{seeds[-1]}: mean and 95% CI")
    paths = [plots.learning_curve(read_metrics(metrics_path, "train"), read_metrics(metrics_path, "eval"),
                                  headline, os.path.join(run_dir, "plots", "learning_curve.png"), title,
                                  eval_every=config.eval_every or None)]
    if final_eval is not None:
        spread = final_eval.ci95 if isinstance(final_eval, SeedsEvalResult) else final_eval.stderr
        paths.append(plots.adaptation_curve(final_eval.mean, spread, final_eval.axis_label,
                                            os.path.join(run_dir, "plots", "adaptation_curve.png"),
                                            f"{title}\n{final_eval.num_tasks} held-out tasks"))
    return paths


def restore_run(run_dir: str, step: int | None = None, seed: int | None = None):
    """Config, algorithm and restored state of a run directory (for evaluation or notebooks).

    For a ``--num-seeds`` run, the state of ``seed`` (one of the run's seeds; default the first)
    out of the checkpoint that holds all of them."""
    config = load_run_config(run_dir)
    config.validate()
    if config.compilation_cache:
        enable_compilation_cache()
    _, dist, algo = build(config)
    seeds = run_seeds(config)
    if seed is not None and seed not in seeds:
        raise ConfigError(f"seed: {run_dir} trained seed(s) {', '.join(map(str, seeds))}, got {seed}")
    init_key, _ = run_keys(config)
    checkpointer = Checkpointer(os.path.join(run_dir, "checkpoints"), config.keep_checkpoints)
    try:
        abstract = jax.eval_shape(init_fn(algo, len(seeds)), init_key)
        state, meta = checkpointer.restore(abstract, step, _checkpoint_identity(config))
        if checkpointer.skipped:
            print(f"warning: checkpoint(s) {', '.join(str(s) for s, _ in checkpointer.skipped)} corrupt or incomplete "
                  f"(details in {checkpointer.error_log}); using iteration {_iteration(state)}", file=sys.stderr)
    finally:
        checkpointer.close()
    if len(seeds) > 1:
        state = select_seed(state, seeds.index(seeds[0] if seed is None else seed))
    return config, dist, algo, state

"""XLA flags that jmeta needs on CPU, applied before JAX initialises its backend.

JAX 0.10 on CPU can hang inside MJX's batched Cholesky solve with XLA's concurrency-optimised
scheduler (measured: 6 hangs in 6 tries of a batched MJX step with the default flags, 6 of 6 runs
completed with ``--xla_cpu_enable_concurrency_optimized_scheduler=false``; see docs/design.md,
"Traps"). ``import jmeta`` applies the flag (it is a CPU-only flag, harmless on accelerators), as
do the entry points, the test suite and the benchmarks, before the first JAX computation: XLA reads
``XLA_FLAGS`` when it creates its backend, so the flag takes effect if no JAX computation ran
before. Flags the user already set in ``XLA_FLAGS`` are kept: ours are appended, never overwritten.
"""

from __future__ import annotations

import os

CPU_SAFE_FLAGS: tuple[str, ...] = ("--xla_cpu_enable_concurrency_optimized_scheduler=false",)


def configure_cpu_flags(environ: dict[str, str] | None = None) -> str:
    """Appends jmeta's CPU-safety flags to ``XLA_FLAGS`` unless the user set them already.

    Returns the resulting ``XLA_FLAGS`` string. It only has an effect when called before JAX
    creates its CPU backend (the first computation), which is why the entry points call it first.
    """
    env = os.environ if environ is None else environ
    current = env.get("XLA_FLAGS", "")
    present = {flag.split("=")[0] for flag in current.split()}
    extra = [flag for flag in CPU_SAFE_FLAGS if flag.split("=")[0] not in present]
    if extra:
        env["XLA_FLAGS"] = " ".join([current, *extra]).strip()
    return env.get("XLA_FLAGS", "")


#: Environment variable: an XLA backend optimisation level for the trainer's compiled
#: meta-iterations and evaluations only (:func:`hot_path_compiler_options`).
HOT_PATH_OPT_LEVEL_ENV = "JMETA_HOT_PATH_OPT_LEVEL"


def hot_path_compiler_options() -> dict[str, int] | None:
    """Per-computation XLA options for the hot paths (the trainer's chunk of meta-iterations and the
    meta-test evaluator), or None (the process-wide ``XLA_FLAGS`` apply).

    Set ``JMETA_HOT_PATH_OPT_LEVEL`` (e.g. 3) when the process runs with a low
    ``--xla_backend_optimization_level``: the test suite compiles its many small programs with
    optimisations off (faster compiles) but its learning tests run long meta-training loops, which
    execute about 3x faster optimised (measured: the ProMP learning test, 168 s -> 59 s). Read when
    the trainer builds its compiled functions."""
    level = os.environ.get(HOT_PATH_OPT_LEVEL_ENV, "").strip()
    if not level:
        return None
    if not level.isdigit():
        raise ValueError(f"{HOT_PATH_OPT_LEVEL_ENV} must be an integer optimisation level, got {level!r}")
    return {"xla_backend_optimization_level": int(level)}


#: Environment variable: the persistent compilation cache's directory, or "off" to disable it.
COMPILATION_CACHE_ENV = "JMETA_COMPILATION_CACHE"


def default_cache_dir() -> str:
    """``$JMETA_COMPILATION_CACHE`` or ``~/.cache/jmeta/jax_compilation_cache``."""
    path = os.environ.get(COMPILATION_CACHE_ENV, "").strip()
    return path or os.path.join(os.path.expanduser("~"), ".cache", "jmeta", "jax_compilation_cache")


def enable_compilation_cache(cache_dir: str | None = None) -> str | None:
    """Turns on JAX's persistent compilation cache; returns its directory (None: left off).

    The trainer, the evaluator and the command-line entry points call this, so that a second run of
    the same program loads its compiled executables instead of compiling them again (measured in
    docs/design.md, "Compilation cache"). A cache directory the user already configured in JAX
    (``jax.config.update("jax_compilation_cache_dir", ...)``) is kept; ``JMETA_COMPILATION_CACHE=off``
    leaves the cache off. Programs that compile in under a second are not cached. Safe to call
    after JAX has run computations: the cache's "is it used" decision is reset.
    """
    import jax

    configured = jax.config.jax_compilation_cache_dir
    if configured:
        return configured
    path = cache_dir or default_cache_dir()
    if path.lower() in ("off", "0", "false", "none"):
        return None
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:  # an unwritable home: run without the cache rather than fail
        return None
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    try:  # a computation that ran before may have decided "no cache" once for this process
        from jax.experimental.compilation_cache import compilation_cache

        compilation_cache.reset_cache()
    except (ImportError, AttributeError):  # pragma: no cover (a JAX without the reset: the cache still
        pass  # applies from the next process, or whenever nothing compiled before this call)
    return path

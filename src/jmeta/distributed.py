"""Many hosts: ``jax.distributed`` under the trainer, process 0 alone writing.

A multi-host run is the same program on every process (SPMD): the task axis of the mesh
(:mod:`jmeta.sharding`) spans the devices of all processes, every process derives the same keys
from the config's seed, and XLA inserts the cross-host reductions. What differs between processes
is the host side: process 0 alone writes the run directory (config, metrics, TensorBoard, plots,
report, console log); every process takes part in checkpoint saves and restores (orbax writes each
array from the process that holds it and the metadata from process 0), so the run directory must
be on storage all processes see.

A run joins a cluster when ``--distributed`` is given or ``JAX_COORDINATOR_ADDRESS`` is set:

    JAX_COORDINATOR_ADDRESS=host0:1234 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=0 python -m jmeta.train ...
    JAX_COORDINATOR_ADDRESS=host0:1234 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=1 python -m jmeta.train ...

Without ``JAX_NUM_PROCESSES``/``JAX_PROCESS_ID``, JAX detects them on SLURM, Open MPI, Kubernetes
and Cloud TPU. On CPUs the cross-process collectives go through gloo.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from jmeta.errors import ConfigError

#: The environment variables that describe the cluster (the coordinator's host:port, the number
#: of processes, this process' index).
ENV_VARS = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


def requested(flag: bool) -> bool:
    """A multi-process run: ``--distributed``, or a coordinator address in the environment."""
    return flag or bool(os.environ.get("JAX_COORDINATOR_ADDRESS"))


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"distributed: {name} must be an integer, got {value!r}") from None


def initialize(flag: bool = False) -> bool:
    """Joins the cluster when :func:`requested` (once per process; before any JAX computation).
    Returns whether this is a multi-process run. A failure to join is one line naming what to set."""
    if not requested(flag):
        return False
    if jax.distributed.is_initialized():
        return True
    num_processes, process_id = _env_int("JAX_NUM_PROCESSES"), _env_int("JAX_PROCESS_ID")
    if num_processes is not None and num_processes < 1:
        raise ConfigError(f"distributed: JAX_NUM_PROCESSES must be >= 1, got {num_processes}")
    if process_id is not None and num_processes is not None and not 0 <= process_id < num_processes:
        raise ConfigError(f"distributed: JAX_PROCESS_ID must be in [0, {num_processes - 1}], got {process_id}")
    try:  # cross-process collectives of CPU backends (accelerators have their own)
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except (AttributeError, KeyError, ValueError):  # a JAX without the option chooses by itself
        pass
    try:
        jax.distributed.initialize(coordinator_address=os.environ.get("JAX_COORDINATOR_ADDRESS") or None,
                                   num_processes=num_processes, process_id=process_id)
    except (ValueError, RuntimeError) as exc:
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"distributed: could not join the cluster ({text}); set {', '.join(ENV_VARS)} "
                          "(or run under SLURM, Open MPI or Kubernetes)") from None
    return True


def process_count() -> int:
    return jax.process_count()


def is_main() -> bool:
    """True on the process that writes the run directory (process 0; the only one on one host)."""
    return jax.process_index() == 0


def broadcast_int(value: int) -> int:
    """Process 0's ``value`` on every process (unchanged on one process)."""
    if jax.process_count() == 1:
        return int(value)
    from jax.experimental import multihost_utils

    return int(multihost_utils.broadcast_one_to_all(np.asarray(value, np.int64)))


def agree_any(flag: bool) -> bool:
    """True on every process when ``flag`` is true on any (e.g. a stop signal caught by one)."""
    if jax.process_count() == 1:
        return bool(flag)
    from jax.experimental import multihost_utils

    return bool(np.any(multihost_utils.process_allgather(np.asarray(flag, np.int32))))


def barrier(name: str) -> None:
    """Every process waits here until all have arrived (nothing on one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def to_host(tree: Any) -> Any:
    """The whole value of every array of ``tree`` as numpy on this process, including arrays split
    over other processes' devices (gathered; :func:`jax.device_get` on one process)."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)

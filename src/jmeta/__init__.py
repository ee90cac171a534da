"""jmeta: JAX-accelerated end-to-end meta-reinforcement learning.

    env, tasks = jmeta.make("point_nav")
    task = tasks.sample(jax.random.key(0))
    obs, state = env.reset(key, task)
"""

# Before anything imports JAX: the CPU XLA flag jmeta needs (see jmeta._xla_flags), so that a
# notebook or script that only does `import jmeta` gets it too, not only the CLI entry points.
from jmeta._xla_flags import configure_cpu_flags

configure_cpu_flags()

from jmeta.envs import EnvSpec, MetaEnv, list_envs, list_variants, make  # noqa: E402
from jmeta.tasks import TaskBank, TaskDistribution  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "EnvSpec",
    "MetaEnv",
    "TaskBank",
    "TaskDistribution",
    "__version__",
    "list_envs",
    "list_variants",
    "make",
]

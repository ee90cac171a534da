"""jmeta: JAX-accelerated end-to-end meta-reinforcement learning.

    env, tasks = jmeta.make("point_nav")
    task = tasks.sample(jax.random.key(0))
    obs, state = env.reset(key, task)
"""

from jmeta.envs import EnvSpec, MetaEnv, list_envs, list_variants, make
from jmeta.tasks import TaskBank, TaskDistribution

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

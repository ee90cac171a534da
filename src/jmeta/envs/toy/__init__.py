"""Pure-JAX toy task families: point_nav, grid_nav, bandit, tabular_mdp.

Importing this package imports (and so registers) every module below.
"""

from jmeta.envs.toy import bandit, grid_nav, point_nav, tabular_mdp

__all__ = ["bandit", "grid_nav", "point_nav", "tabular_mdp"]

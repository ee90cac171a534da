"""MuJoCo task families and what they share.

* :mod:`~jmeta.envs.mujoco.physics`: the two physics paths (MuJoCo's C engine from inside ``jit``,
  and MJX) behind one interface; :mod:`~jmeta.envs.mujoco.assets` locates the MJCF models, which
  ship as package data in ``models/``; :mod:`~jmeta.envs.mujoco.common`: the torso index, the state
  pytree and the health test both families use.
* :mod:`~jmeta.envs.mujoco.locomotion`: cheetah_vel, cheetah_dir, ant_vel, ant_dir, ant_goal.
* :mod:`~jmeta.envs.mujoco.maesn`: MAESN's wheeled_nav, ant_goal_ring, block_push.

Importing this package imports (and so registers) the env modules.
"""

from jmeta.envs.mujoco import assets, common, locomotion, maesn, physics

__all__ = ["assets", "common", "locomotion", "maesn", "physics"]

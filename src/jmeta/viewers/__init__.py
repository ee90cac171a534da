"""Viewers for jmeta rollouts.

* :mod:`jmeta.viewers.mujoco_render`: headless frames of the MuJoCo envs (cheetah_*, ant_*,
  wheeled_nav, ant_goal_ring, block_push) from their states, through MuJoCo's OpenGL renderer on
  EGL or OSMesa (software rendering on a CPU-only machine), and GIF / MP4 writers.

Submodules are imported on demand (``from jmeta.viewers import mujoco_render``), so importing this
package needs no OpenGL.
"""

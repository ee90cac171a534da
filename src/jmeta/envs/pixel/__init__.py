"""Information-seeking envs and the pure-JAX renderer that draws them.

* :mod:`~jmeta.envs.pixel.render`: egocentric quad renderer; :mod:`~jmeta.envs.pixel.font`: its
  built-in bitmap font (sign textures).
* :mod:`~jmeta.envs.pixel.maze`: maze2d (symbolic observation) and maze3d (rendered), on layouts
  from :mod:`~jmeta.envs.pixel.maze_layouts` (host-side parsing and generation).
* :mod:`~jmeta.envs.pixel.visual_nav`: DREAM's sign environment (rendered).

Importing this package imports (and so registers) the env modules.
"""

from jmeta.envs.pixel import font, maze, maze_layouts, render, visual_nav

__all__ = ["font", "maze", "maze_layouts", "render", "visual_nav"]

"""Example first-person views of the rendered environments, written as PNGs for the env cards.

    python experiments/render_examples.py [--out docs/envs/img] [--only visual_nav]

One function per environment (``visual_nav_examples``, ...); each returns ``{file name: image}``
and is registered in :data:`EXAMPLES`. Images are upscaled 4x (nearest) so the pixels stay visible.
"""

from __future__ import annotations

import argparse
import math
import os

import jax.numpy as jnp
import numpy as np
from PIL import Image

UPSCALE = 4


def visual_nav_examples() -> dict[str, np.ndarray]:
    """visual_nav: the start view, the sign read by the sign reader (each colour), the boxes/keys."""
    from jmeta.baselines import visual_nav as vp
    from jmeta.envs.pixel import visual_nav as vn

    def view(x, z, heading_deg, color=0, angles=(0.3, -0.6, 1.1, 0.5, -1.2, 2.0)):
        state = vn.VisualNavState(
            position=jnp.array([x, z], jnp.float32),
            heading=jnp.float32(math.radians(heading_deg)),
            time=jnp.int32(0),
            instruction=jnp.int32(0),
            object_angles=jnp.asarray(angles, jnp.float32),
        )
        return np.asarray(vn.render_view(state, vn.VisualNavTask(color=jnp.int32(color))))

    images = {
        "visual_nav_start.png": view(4.5, 5.0, 135.0),  # from the start, looking at the blue box
        "visual_nav_start_keys.png": view(4.5, 5.0, 60.0),  # towards the blue key and the red box
        "visual_nav_hall.png": view(4.5, 5.0, -100.0),  # through the opening into the hall
    }
    x, z = vp.VIEWPOINTS[8]
    for color, word in enumerate(vn.SIGN_WORDS):
        images[f"visual_nav_sign_{word.lower()}.png"] = view(x, z, vp.VIEW_HEADINGS_DEG[8], color)
    images["visual_nav_sign.png"] = view(5.5, 10.25, 0.0, 2)  # frontal, 4.4 m away
    return images


def _maze_top_down(bank, index: int, goal: int | None = None, px: int = 16) -> np.ndarray:
    """A top-down picture of layout ``index`` of a maze ``bank`` (north up), uint8[rows px, cols px, 3].

    Walls dark, floor light; boxes drawn at their size (0.8 of a 2.0 cell), the reveal disc
    (radius 1.25) around the grey box shaded in the goal colour when ``goal`` is given; the agent at
    the start as a dark disc of radius 0.4 with a line along its start heading.
    """
    from jmeta.envs.pixel import maze

    walls = bank.walls[index]
    rows, cols = walls.shape
    h, w = rows * px, cols * px
    # World coordinates of pixel centres (cell size 2.0, y up).
    ys, xs = np.mgrid[0:h, 0:w]
    wx = (xs + 0.5) / px * 2.0
    wy = (h - ys - 0.5) / px * 2.0
    img = np.where(walls[::-1].repeat(px, 0).repeat(px, 1)[..., None], [70, 64, 52], [236, 230, 214]).astype(float)
    colours = {0: maze.COLORS["grey"], 1: maze.COLORS["blue"], 2: maze.COLORS["red"]}
    centres = (bank.boxes[index] + 0.5) * 2.0
    if goal is not None:
        cx, cy = centres[0]
        disc = (wx - cx) ** 2 + (wy - cy) ** 2 < 1.25**2
        tint = np.array(colours[goal + 1]) * 255
        img[disc] = 0.7 * img[disc] + 0.3 * tint
    for k, (cx, cy) in enumerate(centres):
        square = (np.abs(wx - cx) <= 0.4) & (np.abs(wy - cy) <= 0.4)
        img[square] = np.array(colours[k]) * 255
    sx, sy = (bank.start[index] + 0.5) * 2.0
    img[(wx - sx) ** 2 + (wy - sy) ** 2 < 0.4**2] = [30, 30, 30]
    dx, dy = maze.HEADINGS[int(bank.start_heading[index])]
    for t in np.linspace(0.0, 0.9, 40):
        img[(wx - sx - t * dx) ** 2 + (wy - sy - t * dy) ** 2 < 0.1**2] = [30, 30, 30]
    return img.astype(np.uint8)


def maze2d_examples() -> dict[str, np.ndarray]:
    """maze2d: the default layout from above (reveal disc tinted for a red goal) and 8 layouts of the
    ``random_layout`` bank (separated by white lines)."""
    from jmeta.envs.pixel import maze

    images = {"maze2d_default.png": _maze_top_down(maze.layout_bank(maze.MazeParams()), 0, goal=1)}
    bank = maze.layout_bank(maze.MazeParams(layout="random"))
    tiles = [np.pad(_maze_top_down(bank, i, px=8), ((2, 2), (2, 2), (0, 0)), constant_values=255) for i in range(8)]
    images["maze2d_random_layouts.png"] = np.concatenate(
        [np.concatenate(tiles[:4], axis=1), np.concatenate(tiles[4:], axis=1)], axis=0
    )
    return images


def maze3d_examples() -> dict[str, np.ndarray]:
    """maze3d (default layout, 64 x 48): the start views east (red box) and west (blue box), the grey
    box down its corridor (not revealed), and the same pose within reveal distance for each goal."""
    import jax

    import jmeta
    from jmeta.envs.pixel import maze

    env, _ = jmeta.make("maze3d")
    image = jax.jit(env.image)

    def view(x, y, heading, goal=0):
        state = maze.MazeState(jnp.array([x, y], jnp.float32), jnp.int32(heading), jnp.int32(0))
        return np.asarray(image(state, maze.task_from_bank(env.bank, 0, goal)))

    return {
        "maze3d_start_east.png": view(11.0, 11.0, 0),
        "maze3d_start_west.png": view(11.0, 11.0, 4),
        "maze3d_grey.png": view(19.0, 3.0, 4),
        "maze3d_reveal_blue.png": view(16.0, 3.0, 5, goal=0),
        "maze3d_reveal_red.png": view(16.0, 3.0, 5, goal=1),
    }


EXAMPLES = {"visual_nav": visual_nav_examples, "maze2d": maze2d_examples, "maze3d": maze3d_examples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "docs", "envs", "img"))
    parser.add_argument("--only", choices=sorted(EXAMPLES), default=None)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name, fn in EXAMPLES.items():
        if args.only and name != args.only:
            continue
        for file_name, image in fn().items():
            big = Image.fromarray(image).resize((image.shape[1] * UPSCALE, image.shape[0] * UPSCALE), Image.NEAREST)
            path = os.path.join(args.out, file_name)
            big.save(path)
            print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    main()

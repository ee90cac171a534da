"""A built-in 5x7 bitmap font and text textures for the renderer (signs; no font files).

:func:`text_texture` draws a word as a float32 ``[th, tw, 3]`` texture for
:func:`jmeta.envs.pixel.render.merge_scenes` (``textures=``); :func:`text_bitmap` and :func:`glyph`
give the boolean ink masks.
"""

from __future__ import annotations

import numpy as np

from jmeta.envs.pixel.render import ColorLike
from jmeta.errors import ConfigError

#: A 5x7 bitmap font (upper-case letters, digits, space and a few signs), one string per row,
#: ``#`` = ink. Lower-case input is drawn in upper case.
FONT_5X7: dict[str, tuple[str, ...]] = {
    "A": (".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"),
    "B": ("####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."),
    "C": (".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."),
    "D": ("####.", "#...#", "#...#", "#...#", "#...#", "#...#", "####."),
    "E": ("#####", "#....", "#....", "####.", "#....", "#....", "#####"),
    "F": ("#####", "#....", "#....", "####.", "#....", "#....", "#...."),
    "G": (".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"),
    "H": ("#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"),
    "I": (".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "J": ("..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."),
    "K": ("#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"),
    "L": ("#....", "#....", "#....", "#....", "#....", "#....", "#####"),
    "M": ("#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"),
    "N": ("#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"),
    "O": (".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."),
    "P": ("####.", "#...#", "#...#", "####.", "#....", "#....", "#...."),
    "Q": (".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"),
    "R": ("####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"),
    "S": (".####", "#....", "#....", ".###.", "....#", "....#", "####."),
    "T": ("#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."),
    "U": ("#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."),
    "V": ("#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."),
    "W": ("#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."),
    "X": ("#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"),
    "Y": ("#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."),
    "Z": ("#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"),
    "0": (".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."),
    "1": ("..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "2": (".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"),
    "3": ("#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."),
    "4": ("...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."),
    "5": ("#####", "#....", "####.", "....#", "....#", "#...#", ".###."),
    "6": ("..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."),
    "7": ("#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."),
    "8": (".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."),
    "9": (".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."),
    " ": (".....",) * 7,
    "-": (".....", ".....", ".....", "#####", ".....", ".....", "....."),
    ".": (".....", ".....", ".....", ".....", ".....", ".##..", ".##.."),
    "!": ("..#..", "..#..", "..#..", "..#..", "..#..", ".....", "..#.."),
    "?": (".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."),
}
GLYPH_HEIGHT = 7
GLYPH_WIDTH = 5


def glyph(char: str) -> np.ndarray:
    """The bitmap of one character, bool[7, 5] (row 0 at the top)."""
    key = char.upper()
    if key not in FONT_5X7:
        raise ConfigError(f"character {char!r} is not in the built-in font; valid: {''.join(sorted(FONT_5X7))!r}")
    return np.array([[c == "#" for c in row] for row in FONT_5X7[key]], bool)


def text_bitmap(word: str, margin: int = 1, spacing: int = 1) -> np.ndarray:
    """``word`` drawn with :data:`FONT_5X7`: bool[7 + 2 margin, n (5 + spacing) - spacing + 2 margin]."""
    if not word:
        raise ConfigError("text_bitmap needs a non-empty word")
    cells = []
    for i, ch in enumerate(word):
        if i:
            cells.append(np.zeros((GLYPH_HEIGHT, spacing), bool))
        cells.append(glyph(ch))
    ink = np.concatenate(cells, axis=1)
    return np.pad(ink, margin)


def text_texture(
    word: str,
    size: tuple[int, int] | None = None,
    scale: int = 1,
    ink: ColorLike = (0.0, 0.0, 0.0),
    paper: ColorLike = (1.0, 1.0, 1.0),
    margin: int = 1,
    spacing: int = 1,
) -> np.ndarray:
    """A texture float32[th, tw, 3] showing ``word`` (``ink`` on ``paper``) in the built-in font.

    Without ``size``: the bitmap of :func:`text_bitmap` magnified by the integer ``scale``. With
    ``size = (th, tw)``: that bitmap resampled (nearest texel) to exactly ``th x tw``, so words of
    different lengths can share one texture stack (each word then fills the whole quad it is mapped
    on; make the quad ``len(word)`` glyph cells wide to keep the letters' proportions).
    Returns a NumPy array (host constant); ``jnp.asarray`` it where needed.
    """
    bitmap = text_bitmap(word, margin, spacing)
    if size is None:
        if scale < 1:
            raise ConfigError(f"text_texture scale must be >= 1, got {scale}")
        bitmap = np.repeat(np.repeat(bitmap, scale, axis=0), scale, axis=1)
    else:
        th, tw = size
        if th < 1 or tw < 1:
            raise ConfigError(f"text_texture size must be positive, got {size}")
        rows = np.minimum((np.arange(th) + 0.5) * bitmap.shape[0] / th, bitmap.shape[0] - 1).astype(int)
        cols = np.minimum((np.arange(tw) + 0.5) * bitmap.shape[1] / tw, bitmap.shape[1] - 1).astype(int)
        bitmap = bitmap[rows][:, cols]
    ink_c = np.asarray(ink, np.float32).reshape(3)
    paper_c = np.asarray(paper, np.float32).reshape(3)
    return np.where(bitmap[..., None], ink_c, paper_c).astype(np.float32)

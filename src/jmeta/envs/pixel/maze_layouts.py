"""Maze layouts (host side, numpy): parsing, validation, generation and wall faces.

A layout is a grid of cells, each a wall or free, with a wall border, a start cell (and heading)
and three box cells (grey, blue, red); see :mod:`jmeta.envs.pixel.maze` for the environment that
runs on them and ``docs/envs/maze2d.md`` for the definition. Everything here runs once per variant
on the host: :func:`parse_layout` turns map strings into a one-layout :class:`LayoutBank`,
:func:`random_layouts` generates the fixed, seeded bank of the ``random_layout`` variants, and
:func:`wall_segments` merges the wall faces that ``maze3d`` draws. The JAX env core only indexes
the resulting arrays.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import deque

import numpy as np

from jmeta.errors import ConfigError

#: Box indices in a layout's ``boxes`` (and :attr:`jmeta.envs.pixel.maze.MazeTask.boxes`) and colour
#: ids: the goal is ``BLUE`` or ``RED``.
GREY, BLUE, RED = 0, 1, 2
BOX_NAMES = ("grey", "blue", "red")

#: The fixed ``default`` layout (north up; ``S`` start, ``G`` grey, ``B`` blue, ``R`` red; the
#: agent starts facing east, towards the red box). Start -> blue and start -> red: 4 cells each,
#: in a straight line; start -> grey: 10 cells; grey -> either coloured box: 14 cells; the west
#: branch of the lower corridor is a dead end without a box.
DEFAULT_LAYOUT = (
    "###########",
    "#B...S...R#",
    "#####.#####",
    "#.........#",
    "#.#######.#",
    "#...###G..#",
    "###########",
)
#: Start heading of the default layout (0 = east, +x).
DEFAULT_START_HEADING = 0

#: The ``small`` layout (jmeta's own, for CPU-sized learning tests): the same decision in a 6 x 9
#: maze. Start -> blue and start -> red: 3 cells each, in a straight line (the agent faces red);
#: start -> grey: 3 cells down a dead-end corridor behind a right (or left) turn of 90 degrees.
SMALL_LAYOUT = (
    "#########",
    "#B..S..R#",
    "####.####",
    "####.####",
    "####G####",
    "#########",
)
#: Start heading of the small layout (0 = east, +x).
SMALL_START_HEADING = 0

@dataclasses.dataclass(frozen=True)
class LayoutBank:
    """A stack of ``N`` layouts of one shape (host-side numpy arrays).

    walls: bool[N, rows, cols], indexed ``[row, col]`` with row 0 at the south (y = 0);
    start: int32[N, 2] start cell ``(col, row)``; start_heading: int32[N] heading index at the
    start; boxes: int32[N, 3, 2] cells ``(col, row)`` of the grey, blue and red boxes; segments: float32[N, Q, 4] the wall faces merged into maximal straight
    runs, in cell units in the renderer's frame (see :func:`wall_segments`), zero-padded to the
    longest list of the bank; segment_mask: bool[N, Q], False on the padding.
    """

    walls: np.ndarray
    start: np.ndarray
    start_heading: np.ndarray
    boxes: np.ndarray
    segments: np.ndarray
    segment_mask: np.ndarray

    @property
    def size(self) -> int:
        return int(self.walls.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.walls.shape[1]), int(self.walls.shape[2])


def wall_segments(walls: np.ndarray) -> np.ndarray:
    """The faces between wall and free cells merged into maximal straight runs, float32[n, 4].

    Segments ``(x0, z0, x1, z1)`` in cell units in :mod:`jmeta.envs.pixel.render`'s floor frame, whose
    ``z`` is ``-y`` (so a camera's heading angle equals the maze heading angle), each oriented so
    that its front (``(x0, z0)`` on the viewer's left) faces the free cell. ``n`` is 28 for the
    default layout, at most 30 in the default random bank (54 unmerged faces in the default layout).
    """
    walls = np.asarray(walls, bool)
    rows, cols = walls.shape
    segs = []

    def runs(kinds):  # kinds: list of None / bool along a line -> (kind, start, end) runs
        out, run = [], None
        for i, kind in enumerate([*kinds, None]):
            if run is not None and kind == run[0]:
                run[2] = i + 1
                continue
            if run is not None:
                out.append(tuple(run))
            run = [kind, i, i + 1] if kind is not None else None
        return out

    for r in range(1, rows):  # boundary y = r between rows r - 1 (south) and r (north)
        kinds = [bool(walls[r - 1, c]) if walls[r - 1, c] != walls[r, c] else None for c in range(cols)]
        for wall_south, c0, c1 in runs(kinds):
            # Free cell north (-z side): front normal -z, so x runs from c1 down to c0.
            segs.append((c1, -r, c0, -r) if wall_south else (c0, -r, c1, -r))
    for c in range(1, cols):  # boundary x = c between cols c - 1 (west) and c (east)
        kinds = [bool(walls[r, c - 1]) if walls[r, c - 1] != walls[r, c] else None for r in range(rows)]
        for wall_west, r0, r1 in runs(kinds):
            # Free cell east: front normal +x, so z runs from -r0 to -r1.
            segs.append((c, -r0, c, -r1) if wall_west else (c, -r1, c, -r0))
    return np.asarray(segs, np.float32).reshape(-1, 4)


def _bank(walls: list, starts: list, headings: list, boxes: list) -> LayoutBank:
    segments = [wall_segments(w) for w in walls]
    q = max(len(x) for x in segments)
    padded = np.zeros((len(walls), q, 4), np.float32)
    mask = np.zeros((len(walls), q), bool)
    for i, x in enumerate(segments):
        padded[i, : len(x)] = x
        mask[i, : len(x)] = True
    return LayoutBank(
        np.stack(walls).astype(bool), np.stack(starts).astype(np.int32), np.asarray(headings, np.int32),
        np.stack(boxes).astype(np.int32), padded, mask,
    )


def parse_layout(lines: tuple[str, ...], start_heading: int = 0) -> LayoutBank:
    """A one-layout bank from map strings (north up): ``#`` wall, ``.`` free, ``S G B R`` cells."""
    rows = [list(line) for line in reversed(lines)]
    if len({len(r) for r in rows}) != 1:
        raise ConfigError("maze layout lines must all have the same length")
    grid = np.array(rows)
    found = {}
    for ch in "SGBR":
        where = np.argwhere(grid == ch)
        if len(where) != 1:
            raise ConfigError(f"maze layout needs exactly one {ch!r}, found {len(where)}")
        row, col = where[0]
        found[ch] = (int(col), int(row))
    boxes = np.array([found["G"], found["B"], found["R"]], np.int32)
    return _bank([grid == "#"], [np.array(found["S"], np.int32)], [start_heading], [boxes])


def bfs_distances(walls: np.ndarray, source: tuple[int, int], blocked=()) -> np.ndarray:
    """Shortest 4-connected path lengths (in cells) from ``source`` = ``(col, row)``; -1 if unreachable.

    ``blocked`` lists extra impassable cells ``(col, row)`` (never entered, distance -1).
    Returns int[rows, cols].
    """
    rows, cols = walls.shape
    dist = np.full((rows, cols), -1, np.int64)
    closed = walls.copy()
    for c, r in blocked:
        closed[r, c] = True
    col, row = source
    dist[row, col] = 0
    queue = deque([(col, row)])
    while queue:
        c, r = queue.popleft()
        for dc, dr in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            nc, nr = c + dc, r + dr
            if 0 <= nr < rows and 0 <= nc < cols and not closed[nr, nc] and dist[nr, nc] < 0:
                dist[nr, nc] = dist[r, c] + 1
                queue.append((nc, nr))
    return dist


def layout_problems(walls: np.ndarray, start, boxes) -> list[str]:
    """Reasons why one layout is invalid (empty if valid).

    Valid: a wall border; start and the three boxes on distinct free cells; every box reachable
    from the start without passing through another box's cell; no two of the four cells adjacent
    (so the start neither touches nor reveals anything and each box is approached on its own).
    """
    walls = np.asarray(walls, bool)
    problems = []
    if not (walls[0].all() and walls[-1].all() and walls[:, 0].all() and walls[:, -1].all()):
        problems.append("the border is not all walls")
    cells = [tuple(int(v) for v in start)] + [tuple(int(v) for v in b) for b in boxes]
    names = ("start", *BOX_NAMES)
    for name, (c, r) in zip(names, cells, strict=True):
        if not (0 <= r < walls.shape[0] and 0 <= c < walls.shape[1]) or walls[r, c]:
            problems.append(f"{name} cell {(c, r)} is not a free cell")
    if problems:
        return problems
    if len(set(cells)) != 4:
        problems.append("start and boxes must be four distinct cells")
    for i in range(4):
        for j in range(i + 1, 4):
            if abs(cells[i][0] - cells[j][0]) + abs(cells[i][1] - cells[j][1]) <= 1:
                problems.append(f"{names[i]} and {names[j]} are adjacent")
    for k, name in enumerate(BOX_NAMES):
        others = [cells[1 + j] for j in range(3) if j != k]
        dist = bfs_distances(walls, cells[0], blocked=others)
        c, r = cells[1 + k]
        if dist[r, c] < 0:
            problems.append(f"{name} box is not reachable from the start")
    return problems


def _carve_maze(rng: np.random.Generator, size: int, extra_openings: int) -> np.ndarray:
    """A ``size x size`` maze (``size`` odd): a random depth-first perfect maze on the odd cells,
    plus ``extra_openings`` removed inner walls between two free cells (loops). bool walls."""
    walls = np.ones((size, size), bool)
    nodes = (size - 1) // 2
    visited = np.zeros((nodes, nodes), bool)
    stack = [(int(rng.integers(nodes)), int(rng.integers(nodes)))]
    visited[stack[0][1], stack[0][0]] = True
    walls[2 * stack[0][1] + 1, 2 * stack[0][0] + 1] = False
    while stack:
        c, r = stack[-1]
        options = [
            (c + dc, r + dr)
            for dc, dr in ((1, 0), (-1, 0), (0, 1), (0, -1))
            if 0 <= c + dc < nodes and 0 <= r + dr < nodes and not visited[r + dr, c + dc]
        ]
        if not options:
            stack.pop()
            continue
        nc, nr = options[int(rng.integers(len(options)))]
        visited[nr, nc] = True
        walls[2 * nr + 1, 2 * nc + 1] = False
        walls[r + nr + 1, c + nc + 1] = False  # the wall between the two nodes
        stack.append((nc, nr))
    # Inner walls separating two free cells (one coordinate odd, the other even).
    candidates = [
        (c, r)
        for r in range(1, size - 1)
        for c in range(1, size - 1)
        if walls[r, c]
        and ((r % 2 == 1 and c % 2 == 0 and not walls[r, c - 1] and not walls[r, c + 1])
             or (r % 2 == 0 and c % 2 == 1 and not walls[r - 1, c] and not walls[r + 1, c]))
    ]
    for i in rng.permutation(len(candidates))[:extra_openings]:
        c, r = candidates[int(i)]
        walls[r, c] = False
    return walls


def _dead_ends(walls: np.ndarray) -> list[tuple[int, int]]:
    rows, cols = walls.shape
    ends = []
    for r in range(1, rows - 1):
        for c in range(1, cols - 1):
            if not walls[r, c]:
                free = sum(not walls[r + dr, c + dc] for dc, dr in ((1, 0), (-1, 0), (0, 1), (0, -1)))
                if free == 1:
                    ends.append((c, r))
    return ends


#: Heading index of each axis direction ``(dcol, drow)``.
_AXIS_HEADING = {(1, 0): 0, (0, 1): 2, (-1, 0): 4, (0, -1): 6}


def facing_run(walls: np.ndarray, box, boxes) -> list[tuple[tuple[int, int], int]]:
    """Cells from which a dead-end ``box`` is straight ahead: walking out of the dead end along its
    only open side, the free cells ``(col, row)`` passed (no other box on the way), each with the
    heading index that faces back towards the box. Nearest first."""
    c, r = int(box[0]), int(box[1])
    others = {(int(b[0]), int(b[1])) for b in boxes} - {(c, r)}
    out = []
    for (dc, dr) in _AXIS_HEADING:
        if walls[r + dr, c + dc]:
            continue
        k = 1
        while not walls[r + k * dr, c + k * dc] and (c + k * dc, r + k * dr) not in others:
            out.append(((c + k * dc, r + k * dr), _AXIS_HEADING[(-dc, -dr)]))
            k += 1
    return out


@functools.cache
def random_layouts(
    num: int, size: int = 9, seed: int = 0, extra_openings: int = 1, max_detour: int = 28
) -> LayoutBank:
    """A fixed bank of ``num`` generated ``size x size`` mazes (deterministic in ``seed``).

    Each is a depth-first perfect maze on the odd cells with ``extra_openings`` walls removed
    (loops); the grey, blue and red boxes sit on three distinct dead ends (so no route passes
    through a box, and the grey box is always a detour). As in the default layout, the agent starts
    3 or 4 cells straight in front of one of the coloured boxes (blue or red, uniform), facing it
    down a clear corridor, at least 3 cells (path length) from the other boxes; start -> grey ->
    either coloured box is at most ``max_detour`` cells (28: about 112 forward steps plus turns,
    within the 200-step horizon). Layouts failing :func:`layout_problems` are redrawn.
    """
    rng = np.random.default_rng(seed)
    walls_list, starts, headings, boxes_list = [], [], [], []
    while len(walls_list) < num:
        walls = _carve_maze(rng, size, extra_openings)
        ends = _dead_ends(walls)
        if len(ends) < 3:
            continue
        picks = rng.permutation(len(ends))[:3]
        boxes = np.array([ends[int(i)] for i in picks], np.int32)
        faced = int(rng.integers(BLUE, RED + 1))
        options = [(cell, h) for k, (cell, h) in enumerate(facing_run(walls, boxes[faced], boxes)) if k in (2, 3)]
        if not options:
            continue
        cell, heading = options[int(rng.integers(len(options)))]
        start = np.array(cell, np.int32)
        dists = [bfs_distances(walls, tuple(b)) for b in boxes]
        if min(d[start[1], start[0]] for d in dists) < 3 or layout_problems(walls, start, boxes):
            continue
        to_grey = dists[GREY][start[1], start[0]]
        if to_grey + max(dists[GREY][b[1], b[0]] for b in boxes[1:]) > max_detour:
            continue
        walls_list.append(walls)
        starts.append(start)
        headings.append(heading)
        boxes_list.append(boxes)
    return _bank(walls_list, starts, headings, boxes_list)

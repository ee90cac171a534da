"""The JAX quad renderer (jmeta.envs.pixel.render): projection geometry, visibility, textures,
jit/vmap; and its bitmap font (jmeta.envs.pixel.font)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jmeta.envs.pixel.font import glyph, text_bitmap, text_texture
from jmeta.envs.pixel.render import (
    Camera,
    box_quads,
    merge_scenes,
    quads_scene,
    render,
    render_depth_jit,
    render_jit,
    textured_quad,
    wall_quads,
)
from jmeta.errors import ConfigError

FLAT = Camera(shading=0.0, back_face_brightness=1.0)
RED, GREEN, BLUE = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)


_jit_render = render_jit
_jit_depth = render_depth_jit


PAD_QUADS = 8  # small scenes are padded with hidden quads to one shape: one compile per camera


def _pad(scene, n=PAD_QUADS):
    extra = n - scene.num_quads
    assert extra >= 0
    hidden = quads_scene(jnp.zeros((extra, 4)), 0.0, 1.0, RED, visible=False)
    textures = scene.textures
    if textures.shape[1:3] == (1, 1):  # dummy texture: use one shape for all scenes
        textures = jnp.zeros((1, 4, 8, 3), jnp.float32)
    return merge_scenes(scene, hidden, textures=textures)


def _render(scene, x, z, heading, camera=FLAT):
    pos = jnp.array([x, z], jnp.float32)
    return np.asarray(_jit_render(_pad(scene), pos, jnp.float32(heading), camera=camera))


def _depth(scene, camera=FLAT):
    return _jit_depth(_pad(scene), jnp.zeros(2), jnp.float32(0.0), camera=camera)


def _covered_rows(camera, depth, bottom, top):
    """Rows whose pixel centre sees a height in [bottom, top] at forward depth ``depth``."""
    f = camera.focal_px
    rows = np.arange(camera.height)
    v = (camera.height / 2 - rows - 0.5) / f
    y = camera.eye_height + depth * v
    return rows[(y >= bottom) & (y <= top)]


def test_wall_rows_follow_pinhole_projection():
    # A wall across the view at x = 3 (front facing -x), heights [0.5, 2.74]; camera at the origin.
    d, bottom, top = 3.0, 0.5, 2.74
    scene = merge_scenes(quads_scene(jnp.array([[d, -20.0, d, 20.0]]), bottom, top, RED))
    img = _render(scene, 0.0, 0.0, 0.0)
    col = img[:, FLAT.width // 2]
    red_rows = np.flatnonzero(np.all(col == [255, 0, 0], axis=-1))
    f = FLAT.focal_px
    top_row = FLAT.height / 2 - f * (top - FLAT.eye_height) / d  # continuous, 0 = top edge
    bottom_row = FLAT.height / 2 - f * (bottom - FLAT.eye_height) / d
    assert abs(red_rows.min() - top_row) <= 1.0
    assert abs(red_rows.max() + 1 - bottom_row) <= 1.0
    np.testing.assert_array_equal(red_rows, _covered_rows(FLAT, d, bottom, top))
    # Every column sees the wall over the same rows (forward depth is constant on a facing wall).
    assert np.all(np.all(img[red_rows] == [255, 0, 0], axis=-1))
    # Above: ceiling colour; below: floor colour.
    np.testing.assert_array_equal(img[0, 0], np.round(np.array(FLAT.ceiling_color) * 255))
    np.testing.assert_array_equal(img[-1, 0], np.round(np.array(FLAT.floor_color) * 255))


def test_horizontal_extent_follows_projection():
    # A quad from z = -1 to z = 1 at x = 4: columns where |u| <= 1/4 in focal units.
    scene = merge_scenes(quads_scene(jnp.array([[4.0, -1.0, 4.0, 1.0]]), 0.0, 3.0, GREEN))
    img = _render(scene, 0.0, 0.0, 0.0)
    cols = np.flatnonzero(np.all(img[FLAT.height // 2] == [0, 255, 0], axis=-1))
    us = (np.arange(FLAT.width) + 0.5 - FLAT.width / 2) / FLAT.focal_px
    np.testing.assert_array_equal(cols, np.flatnonzero(np.abs(us) * 4.0 <= 1.0))


def test_empty_scene_is_floor_and_ceiling():
    camera = FLAT
    scene = merge_scenes(quads_scene(jnp.zeros((1, 4)), 0.0, 1.0, RED, visible=False))
    img = _render(scene, 0.0, 0.0, 1.0, camera)
    half = camera.height // 2
    assert np.all(img[:half] == np.round(np.array(camera.ceiling_color) * 255))
    assert np.all(img[half:] == np.round(np.array(camera.floor_color) * 255))


def test_nearer_quad_wins_and_hidden_quad_is_not_drawn():
    near = quads_scene(jnp.array([[2.0, -1.0, 2.0, 1.0]]), 0.0, 3.0, RED)
    far = quads_scene(jnp.array([[5.0, -5.0, 5.0, 5.0]]), 0.0, 3.0, BLUE)
    centre = (FLAT.height // 2, FLAT.width // 2)
    for order in ((near, far), (far, near)):  # the order of the quads does not matter
        img = _render(merge_scenes(*order), 0.0, 0.0, 0.0)
        np.testing.assert_array_equal(img[centre], [255, 0, 0])
        np.testing.assert_array_equal(img[FLAT.height // 2, 2], [0, 0, 255])  # beside the near quad
    hidden = quads_scene(jnp.array([[2.0, -1.0, 2.0, 1.0]]), 0.0, 3.0, RED, visible=False)
    img = _render(merge_scenes(hidden, far), 0.0, 0.0, 0.0)
    np.testing.assert_array_equal(img[centre], [0, 0, 255])
    index, depth, _, _ = _depth(merge_scenes(hidden, far))
    assert int(index[centre]) == 1
    np.testing.assert_allclose(depth[centre], 5.0, rtol=1e-5)


def test_heading_convention_and_left_right():
    # MiniWorld: heading 0 looks along +x, positive headings turn left; right vector (sin h, cos h).
    box = merge_scenes(box_quads((0.0, -4.0), 0.4, 0.8, BLUE))  # at -z from the camera
    img = _render(box, 0.0, 0.0, math.pi / 2)  # forward = (cos, -sin) = (0, -1)
    blue = np.all(img == [0, 0, 255], axis=-1)
    cols = np.flatnonzero(blue.any(axis=0))
    assert cols.size and abs(cols.mean() - (FLAT.width - 1) / 2) < 1.0
    # Facing +x, a box at -z is on the left (right vector is +z), one at +z on the right.
    left = _render(merge_scenes(box_quads((4.0, -2.0), 0.4, 0.8, BLUE)), 0.0, 0.0, 0.0)
    cols = np.flatnonzero(np.all(left == [0, 0, 255], axis=-1).any(axis=0))
    assert cols.size and cols.max() < FLAT.width // 2
    right = _render(merge_scenes(box_quads((4.0, 2.0), 0.4, 0.8, BLUE)), 0.0, 0.0, 0.0)
    cols = np.flatnonzero(np.all(right == [0, 0, 255], axis=-1).any(axis=0))
    assert cols.size and cols.min() >= FLAT.width // 2
    # Behind the camera: not drawn.
    behind = _render(merge_scenes(box_quads((-4.0, 0.0), 0.4, 0.8, BLUE)), 0.0, 0.0, 0.0)
    assert not np.any(np.all(behind == [0, 0, 255], axis=-1))


def test_box_faces_point_outwards_and_top_uses_back_face_brightness():
    camera = Camera(shading=0.5, light_angle_deg=0.0, back_face_brightness=1.0)
    box = merge_scenes(box_quads((3.0, 0.0), 0.4, 0.8, BLUE, angle=0.0))
    index, _, _, front = _depth(box, camera)
    index, front = np.asarray(index), np.asarray(front)
    # The face at local +x... seen from -x the near face is the one at x = 2.6 (quad 2, local -x).
    low_centre = (camera.height - 5, camera.width // 2)
    assert index[low_centre] == 2 and front[low_centre]
    img = _render(box, 0.0, 0.0, 0.0, camera)
    # Near face: normal (-1, 0) is parallel to the light -> full brightness |n . L| = 1.
    np.testing.assert_array_equal(img[low_centre], [0, 0, 255])
    # The open top (rows between the near face's top and the far face's top) shows back faces.
    rows_near = _covered_rows(camera, 2.6, 0.0, 0.8)
    rows_far = _covered_rows(camera, 3.4, 0.0, 0.8)
    top_rows = sorted(set(rows_far) - set(rows_near))
    assert top_rows
    assert not np.any(front[top_rows, camera.width // 2])
    # Light along +z: faces with normal +-x get 1 - 0.5 = 0.5.
    dim = _render(box, 0.0, 0.0, 0.0, Camera(shading=0.5, light_angle_deg=90.0))
    np.testing.assert_array_equal(dim[low_centre], [0, 0, 128])


def test_rotated_box_keeps_its_footprint():
    # A square box rotated by 45 degrees: its silhouette is wider (diagonal) than the unrotated one.
    def width(angle):
        img = _render(merge_scenes(box_quads((4.0, 0.0), 0.4, 0.8, BLUE, angle=angle)), 0.0, 0.0, 0.0)
        return np.all(img == [0, 0, 255], axis=-1).any(axis=0).sum() + np.any(img[..., 2] > 0, axis=0).sum()

    assert width(math.pi / 4) > width(0.0)


def test_texture_orientation_not_mirrored():
    # Texture: left half black, right half white. Seen from the front it reads left to right.
    tex = np.ones((4, 8, 3), np.float32)
    tex[:, :4] = 0.0
    sign = textured_quad((5.0, -2.0), (5.0, 2.0), 0.5, 2.5, 0)  # left/right as seen from -x
    scene = merge_scenes(sign, textures=jnp.asarray(tex)[None])
    img = _render(scene, 0.0, 0.0, 0.0)
    row = img[FLAT.height // 2]
    cols = np.flatnonzero(np.all(row == 0, axis=-1) | np.all(row == 255, axis=-1))
    assert cols.size > 10
    left, right = row[cols[: len(cols) // 2 - 1]], row[cols[len(cols) // 2 + 1 :]]
    assert np.all(left == 0) and np.all(right == 255)
    # From behind the quad, the texture is mirrored.
    back = _render(scene, 10.0, 0.0, math.pi)
    row = back[FLAT.height // 2]
    assert np.all(row[FLAT.width // 2 - 3] == 255) and np.all(row[FLAT.width // 2 + 2] == 0)
    # Texture rows: top of the quad is texture row 0.
    tex2 = np.ones((2, 2, 3), np.float32)
    tex2[0] = 0.0  # top half black
    scene2 = merge_scenes(sign, textures=jnp.asarray(tex2)[None])
    img2 = _render(scene2, 0.0, 0.0, 0.0)
    col = img2[:, FLAT.width // 2]
    painted = np.flatnonzero(np.all(col == 0, axis=-1) | np.all(col == 255, axis=-1))
    assert np.all(col[painted[0]] == 0) and np.all(col[painted[-1]] == 255)


def test_text_texture_renders_words_readably():
    bitmap = text_bitmap("RED")
    assert bitmap.shape == (9, 3 * 6 - 1 + 2)
    np.testing.assert_array_equal(bitmap[1:8, 1:6], glyph("R"))
    np.testing.assert_array_equal(bitmap[1:8, 13:18], glyph("D"))
    tex = text_texture("BLUE", scale=2)
    assert tex.shape == (18, (4 * 6 - 1 + 2) * 2, 3) and tex.dtype == np.float32
    assert set(np.unique(tex)) == {0.0, 1.0}
    sized = text_texture("GREEN", size=(16, 120))
    assert sized.shape == (16, 120, 3)
    # Different words give different textures at a common size.
    words = [text_texture(w, size=(16, 120)) for w in ("BLUE", "RED", "GREEN")]
    assert not np.array_equal(words[0], words[1]) and not np.array_equal(words[1], words[2])
    assert np.array_equal(glyph("b"), glyph("B"))
    with pytest.raises(ConfigError):
        glyph("@")
    with pytest.raises(ConfigError):
        text_bitmap("")


def _reference_depth(scene, position, heading, camera):
    """A per-pixel NumPy ray caster (loops over pixels) for the nearest quad and its depth."""
    quads = np.asarray(scene.quads, np.float64)
    visible, bottom, top = (np.asarray(a) for a in (scene.quad_visible, scene.quad_bottom, scene.quad_top))
    f = camera.focal_px
    fwd = np.array([math.cos(heading), -math.sin(heading)])
    right = np.array([math.sin(heading), math.cos(heading)])
    index = np.full((camera.height, camera.width), -1)
    depth = np.full((camera.height, camera.width), np.inf)
    for j in range(camera.width):
        d = fwd + (j + 0.5 - camera.width / 2) / f * right
        for i in range(camera.height):
            v = (camera.height / 2 - i - 0.5) / f
            for q, (x0, z0, x1, z1) in enumerate(quads):
                if not visible[q]:
                    continue
                e = np.array([x1 - x0, z1 - z0])
                w = np.array([x0, z0]) - position
                den = d[0] * e[1] - d[1] * e[0]
                if abs(den) < 1e-9:
                    continue
                t = (w[0] * e[1] - w[1] * e[0]) / den
                s = (w[0] * d[1] - w[1] * d[0]) / den
                y = camera.eye_height + t * v
                inside = 0 <= s <= 1 and bottom[q] <= y <= top[q]
                if t > camera.near and inside and t < depth[i, j]:
                    index[i, j], depth[i, j] = q, t
    return index, depth


def _room_scene():
    walls = wall_quads(
        jnp.array([[0.0, 10.0, 0.0, 0.0], [0.0, 0.0, 10.0, 0.0], [10.0, 0.0, 10.0, 10.0], [10.0, 10.0, 0.0, 10.0]]),
        2.74,
        (0.6, 0.6, 0.6),
    )
    return merge_scenes(
        walls,
        box_quads((6.0, 5.0), 0.4, 0.8, RED, angle=0.3),
        textured_quad((9.95, 3.0), (9.95, 7.0), 0.85, 1.85, 0),
        textures=jnp.asarray(text_texture("BLUE", size=(9, 100)))[None],
    )


def test_geometry_matches_numpy_reference():
    scene = _room_scene()
    camera = Camera(width=16, height=12)
    for pose in (((4.0, 5.0), 0.0), ((2.0, 2.0), 1.0), ((8.0, 8.0), -2.5)):
        position, heading = np.array(pose[0]), pose[1]
        index, depth, _, _ = render_depth_jit(scene, jnp.asarray(position, jnp.float32), jnp.float32(heading), camera=camera)
        ref_index, ref_depth = _reference_depth(scene, position, heading, camera)
        np.testing.assert_allclose(np.asarray(depth), ref_depth, rtol=1e-4)
        same = np.asarray(index) == ref_index
        # Ties (a box corner, where two faces meet at one depth) may pick either quad.
        assert np.all(same | np.isclose(np.asarray(depth), ref_depth, rtol=1e-4))


def test_jit_and_vmap_match_single_renders():
    scene = _room_scene()
    camera = Camera()
    positions = jnp.array([[4.0, 5.0], [2.0, 2.0], [8.0, 8.0], [5.0, 1.0]], jnp.float32)
    headings = jnp.array([0.0, 1.0, -2.5, 3.0], jnp.float32)
    batch = np.asarray(jax.jit(jax.vmap(lambda p, h: render(scene, p, h, camera)))(positions, headings))
    assert batch.shape == (4, 60, 80, 3) and batch.dtype == np.uint8
    for i in range(4):
        single = np.asarray(render_jit(scene, positions[i], headings[i], camera=camera))
        np.testing.assert_array_equal(single, batch[i])
    # vmap over scenes as well (the box hidden in the second row).
    scenes = jax.tree_util.tree_map(lambda x: jnp.stack([x, x]), scene)
    scenes = scenes.replace(quad_visible=scenes.quad_visible.at[1, 4:8].set(False))
    two = np.asarray(jax.jit(jax.vmap(lambda s: render(s, positions[0], headings[0], camera)))(scenes))
    np.testing.assert_array_equal(two[0], batch[0])
    assert not np.array_equal(two[0], two[1])
    def reddish(img):
        return (img[..., 0] > 0) & (img[..., 1] == 0) & (img[..., 2] == 0)

    assert reddish(two[0]).any() and not reddish(two[1]).any()  # the box is drawn only in row 0


def test_camera_validate():
    Camera().validate()
    for bad in (Camera(width=0), Camera(fov_y_deg=180.0), Camera(shading=2.0), Camera(floor_color=(2.0, 0.0, 0.0))):
        with pytest.raises(ConfigError):
            bad.validate()

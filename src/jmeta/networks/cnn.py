"""Pixel observations: a small convolutional encoder for the rendered environments.

The pixel envs (``maze3d``, ``visual_nav``) give flat float32 observations whose first
``H * W * C`` entries are an image in ``[0, 1]`` (row-major ``[row, col, channel]``) and whose
remaining entries are a vector (``visual_nav``: the one-hot instruction). They declare the image's
shape as ``env.image_shape = (H, W, C)``; :func:`image_shape` reads it through wrappers.

:class:`PixelEncoder` is DREAM's ``MiniWorldEmbedder`` (ezliu/dream ``embed.py``): three
convolutions of 32 channels (kernel 5 stride 2, kernel 5 stride 2, kernel 4 stride 2, no padding,
ReLU), flattened, then a linear layer to ``embed_size``. :func:`split_pixels` feeds it: it applies
the encoder to the image part of any input vector whose first entries are the image and
concatenates the rest unchanged, so a network built on flat inputs (the recurrent actor-critic's
``[obs, prev_action, prev_reward, prev_done]``) takes pixels by wrapping its first layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

#: DREAM's MiniWorldEmbedder: (features, kernel, stride) of each convolution.
DREAM_CONVS: tuple[tuple[int, int, int], ...] = ((32, 5, 2), (32, 5, 2), (32, 4, 2))


def image_shape(env) -> tuple[int, int, int] | None:
    """``(H, W, C)`` of the image at the start of ``env``'s observations, or None for non-pixel envs.

    Looks through wrappers (each keeps the wrapped env in ``.env``)."""
    while env is not None:
        shape = getattr(type(env), "image_shape", None)
        if shape is not None:
            value = env.image_shape
            return None if value is None else tuple(int(s) for s in value)
        env = env.__dict__.get("env") if isinstance(getattr(env, "__dict__", None), dict) else None
    return None


class PixelEncoder(nn.Module):
    """Convolutions then a linear layer. images [..., H, W, C] -> [..., embed_size]."""

    embed_size: int = 128
    convs: Sequence[tuple[int, int, int]] = DREAM_CONVS

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        lead = images.shape[:-3]
        x = images.reshape(-1, *images.shape[-3:])
        for features, kernel, stride in self.convs:
            x = nn.relu(nn.Conv(features, (kernel, kernel), (stride, stride), padding="VALID")(x))
        x = x.reshape(x.shape[0], -1)
        x = nn.Dense(self.embed_size)(x)
        return x.reshape(*lead, self.embed_size)


def encode_image_part(x: jax.Array, shape: tuple[int, int, int], encoder) -> jax.Array:
    """[..., H*W*C + R] -> [..., F + R]: ``encoder`` (images [..., H, W, C] -> [..., F], e.g. a
    :class:`PixelEncoder` bound in a ``setup``) on the image part, the rest unchanged."""
    size = math.prod(shape)
    images = x[..., :size].reshape(*x.shape[:-1], *shape)
    return jnp.concatenate([encoder(images), x[..., size:]], axis=-1)


def split_pixels(x: jax.Array, shape: tuple[int, int, int], embed_size: int,
                 convs: Sequence[tuple[int, int, int]] = DREAM_CONVS) -> jax.Array:
    """:func:`encode_image_part` with a :class:`PixelEncoder` named ``pixels`` created in the calling
    module's scope (call inside ``nn.compact``). [..., H*W*C + R] -> [..., embed_size + R]."""
    return encode_image_part(x, shape, PixelEncoder(embed_size, tuple(convs), name="pixels"))


def conv_output_size(shape: tuple[int, int, int], convs: Sequence[tuple[int, int, int]] = DREAM_CONVS) -> int:
    """Flattened size after the convolutions (VALID padding), e.g. 32 * 5 * 7 for DREAM's 60 x 80 images."""
    height, width, _ = shape
    for _, kernel, stride in convs:
        height = (height - kernel) // stride + 1
        width = (width - kernel) // stride + 1
    if height < 1 or width < 1:
        raise ValueError(f"image shape {shape} is too small for the convolutions {tuple(convs)}")
    return convs[-1][0] * height * width

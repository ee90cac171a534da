"""The multilayer perceptrons every network is built from.

:func:`hidden_layers` creates its ``Dense`` layers in the scope of the calling Flax module, so a
module that needs a torso inline (e.g. the recurrent core's input embedding) and :class:`MLP` share
the same code and the same parameter names (``Dense_0``, ``Dense_1``, ...).

:class:`RlkitMLP` is the same network with rlkit's initialisation, for the off-policy agents
ported from rlkit code (PEARL): every hidden ``Linear`` uniform in ``±1/sqrt(size[0])`` (rlkit's
``fanin_init``; ``size[0]`` of a torch weight is its output width), hidden biases 0.1, output
weights and biases uniform in ``±init_w``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jmeta.errors import ConfigError

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu,
    "tanh": nn.tanh,
    "elu": nn.elu,
    "gelu": nn.gelu,
    "swish": nn.swish,
}


def activation_fn(name: str) -> Callable[[jax.Array], jax.Array]:
    if name not in ACTIVATIONS:
        raise ConfigError(f"activation must be one of {', '.join(sorted(ACTIVATIONS))}, got {name!r}")
    return ACTIVATIONS[name]


def hidden_layers(x: jax.Array, widths: Sequence[int], activation: str) -> jax.Array:
    """``act(Dense(w)(x))`` for each width (Xavier-uniform kernels); call inside ``nn.compact``.

    [..., in] -> [..., widths[-1]] (``x`` unchanged when ``widths`` is empty).
    """
    act = activation_fn(activation)
    for width in widths:
        x = act(nn.Dense(width, kernel_init=nn.initializers.xavier_uniform())(x))
    return x


class MLP(nn.Module):
    """Fully connected network. [..., in] -> [..., out_size]; the output layer is linear.

    ``out_scale`` scales the output layer's variance-scaling init (small for policy heads).
    """

    hidden_sizes: Sequence[int]
    out_size: int
    activation: str = "relu"
    out_scale: float = 1.0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = hidden_layers(x, self.hidden_sizes, self.activation)
        init = nn.initializers.variance_scaling(self.out_scale, "fan_avg", "uniform")
        return nn.Dense(self.out_size, kernel_init=init)(x)


def _uniform(scale: float):
    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -scale, scale)

    return init


class RlkitMLP(nn.Module):
    """Hidden layers with rlkit's init (module docstring), then ``heads`` linear outputs of
    ``out_size`` each (uniform ``±init_w``). [..., in] -> tuple of [..., out_size]."""

    hidden_sizes: Sequence[int]
    out_size: int
    heads: int = 1
    activation: str = "relu"
    init_w: float = 3e-3

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, ...]:
        act = activation_fn(self.activation)
        for width in self.hidden_sizes:
            dense = nn.Dense(width, kernel_init=_uniform(1.0 / width**0.5), bias_init=nn.initializers.constant(0.1))
            x = act(dense(x))
        return tuple(nn.Dense(self.out_size, kernel_init=_uniform(self.init_w), bias_init=_uniform(self.init_w))(x)
                     for _ in range(self.heads))

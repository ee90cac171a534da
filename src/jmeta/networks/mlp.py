"""The one multilayer perceptron every network is built from.

:func:`hidden_layers` creates its ``Dense`` layers in the scope of the calling Flax module, so a
module that needs a torso inline (e.g. the recurrent core's input embedding) and :class:`MLP` share
the same code and the same parameter names (``Dense_0``, ``Dense_1``, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax

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

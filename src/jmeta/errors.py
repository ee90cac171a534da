"""Exceptions that carry a message meant for the user (printed without a traceback by the CLIs)."""

from __future__ import annotations


class JMetaError(Exception):
    """Base class of jmeta's user-facing errors."""


class UnknownNameError(JMetaError, KeyError):
    """An environment, variant or algorithm name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(JMetaError, ValueError):
    """An invalid configuration value, named by its field (raised before anything compiles)."""


class CheckpointError(JMetaError):
    """A checkpoint that is missing, corrupt, or does not match the run it is restored into."""


class NonFiniteError(JMetaError):
    """Training produced NaN/Inf; the run stops and keeps its last good checkpoint."""


def unknown_name(kind: str, name: str, valid: list[str] | tuple[str, ...]) -> UnknownNameError:
    """Builds the standard 'unknown X: valid ones are ...' error."""
    listed = ", ".join(sorted(valid))
    return UnknownNameError(f"unknown {kind} {name!r}; valid {kind}s: {listed}")


class EnvInputError(JMetaError, ValueError):
    """A task or action that does not fit the environment (wrong structure, shape or dtype)."""

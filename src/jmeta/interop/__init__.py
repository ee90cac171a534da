"""Interoperability with other RL libraries.

:mod:`jmeta.interop.gymnasium` turns every registered jmeta env into a ``gymnasium.Env`` or a
jitted, vmapped ``gymnasium.vector.VectorEnv`` (with a fixed task or a task distribution), and a
gymnax-style functional env into a jmeta ``MetaEnv``. It needs ``gymnasium`` (1.x), which the core
package does not; see ``docs/interop.md``.
"""

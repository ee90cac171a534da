"""Shared pieces of the command-line entry points."""

from __future__ import annotations

import sys
from collections.abc import Callable

from jmeta.errors import JMetaError, NonFiniteError


def run_cli(main: Callable[[], int]) -> int:
    """Runs ``main``; user errors become one line on stderr (exit 2; NaN stops exit 1), no traceback.
    The storage libraries' own log records stay off the console (they go to the run's errors.log)."""
    from jmeta.logging import quiet_library_logs

    quiet_library_logs()
    try:
        return main()
    except NonFiniteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except JMetaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

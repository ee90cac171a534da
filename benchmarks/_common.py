"""Shared helpers for benchmark scripts: hardware/version info and JSON output."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from typing import Any


def hardware() -> dict[str, Any]:
    import jax

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax_backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "device_kind": jax.devices()[0].device_kind,
    }
    try:
        model = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
        if model:
            info["cpu_model"] = model[0]
    except OSError:
        pass
    try:
        gpus = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
        if gpus.returncode == 0:
            info["gpus"] = gpus.stdout.strip().splitlines()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return info


def versions() -> dict[str, str]:
    import flax
    import jax
    import jaxlib
    import optax

    import jmeta

    return {
        "python": sys.version.split()[0],
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "jmeta": jmeta.__version__,
    }


def write_result(path: str | None, payload: dict[str, Any], quiet: bool = False) -> None:
    """Writes ``payload`` with date, command, hardware and versions to ``path`` (JSON) and prints it
    (unless ``quiet``: scripts that save partial results after every measurement print only once)."""
    payload = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "hardware": hardware(),
        "versions": versions(),
        **payload,
    }
    text = json.dumps(payload, indent=2)
    if not quiet:
        print(text)
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text + "\n")

"""What produced a result: package versions and the machine, recorded next to every output."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

_PACKAGES = ("numpy", "scipy", "cvxpy", "osqp", "gymnasium", "pettingzoo", "pandas", "torch", "stable-baselines3")


def environment_info() -> dict[str, Any]:
    """Python, platform, CPU count and the installed versions of the key packages."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "packages": versions}

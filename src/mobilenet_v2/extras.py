"""Optional dependencies: imported when a feature needs them, else a one-line error that
names the feature and the extra that installs them."""

from __future__ import annotations

import importlib
from types import ModuleType

from mobilenet_v2.errors import MissingExtraError


def require(modules: tuple[str, ...], feature: str, extra: str, instead: str = "") -> ModuleType:
    """Import `modules` (a package and the submodules used) and return the first; if one is
    missing, say that `feature` needs it and how to install it. An ImportError from inside
    the installed package is its own bug and propagates."""
    try:
        for name in modules:
            importlib.import_module(name)
    except ImportError as exc:
        package = modules[0].split(".")[0]
        if exc.name and exc.name.split(".")[0] != package:
            raise
        raise MissingExtraError(
            f"{feature}: {package} is not installed; install it with: "
            f"pip install 'mobilenet-v2[{extra}]'"
            + (f" ({instead})" if instead else "")
        ) from exc
    return importlib.import_module(modules[0])

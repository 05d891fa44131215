"""Heavy and optional libraries, imported on first use.

Plugin declarations (backbones, proxies, search methods, runtimes, command groups) are read to
list the plugins and to validate a config, which must stay quick and never import PyTorch. A
module that declares plugins therefore reaches torch, the optional extras and its own heavy
implementation modules through ``module`` (an object whose first attribute access imports the
module) or ``attribute`` (``"package.module:name"``, imported when called). Everything else
imports at the top as usual. A missing optional package raises ``ImportError`` naming the extra
that installs it::

    torch = lazy.module("torch")
    ort = lazy.module("onnxruntime", extra="onnx")     # pip install 'paretolm[onnx]'
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands in for module ``name`` until an attribute is read; then imports it."""

    def __init__(self, name: str, extra: str | None = None):
        self._name, self._extra, self._module = name, extra, None

    def _load(self) -> ModuleType:
        if self._module is None:
            self._module = load(self._name, self._extra)
        return self._module

    def __getattr__(self, attr: str) -> Any:
        if attr in ("_name", "_extra", "_module"):  # not set yet (a copy being built)
            raise AttributeError(attr)
        return getattr(self._load(), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}{' (loaded)' if self._module is not None else ''}>"


def load(name: str, extra: str | None = None) -> ModuleType:
    """Import module ``name`` now; a missing package names the extra that installs it."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        root = name.split(".", 1)[0]
        if extra is None or (e.name or "").split(".", 1)[0] != root:
            raise
        raise ImportError(f"{name}: not installed; `pip install 'paretolm[{extra}]'` installs it") from e


def module(name: str, extra: str | None = None) -> Any:
    """Module ``name``, imported the first time one of its attributes is read."""
    return LazyModule(name, extra)


def attribute(path: str, extra: str | None = None) -> Any:
    """The object at ``"package.module:name"`` (dots after the colon walk attributes), imported now."""
    mod, _, attr = path.partition(":")
    obj: Any = load(mod, extra)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


__all__ = ["LazyModule", "attribute", "load", "module"]

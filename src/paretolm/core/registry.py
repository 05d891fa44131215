"""One registry class for every kind of plugin: backbones, proxies, search methods, runtimes, commands.

Entries are named. A registry may own a package: every module in it is imported the first time the
registry is asked for its entries, and registers what it holds with the decorator, so adding a
plugin is adding one file (as lm-evaluation-harness does with its tasks folder). An entry can also
be a lazy ``"package.module:attribute"`` string (or ``"package.module"`` for the module itself),
imported on first use. Names keep the order they were added in. Asking for a name that is not
there raises ``ValueError`` listing every name that is.

    BACKBONES = Registry("backbone", package="paretolm.core.backbones")

    @BACKBONES.register("gpt2")
    class GPT2(Backbone): ...
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind, each loaded lazily from ``"module:attribute"`` or given as is."""

    def __init__(self, kind: str, package: str | None = None):
        self.kind = kind
        self.package = package
        self._entries: dict[str, T | str] = {}
        self._scanned = package is None

    def _scan(self) -> None:
        """Import every module of the registry's package once (their decorators register)."""
        if self._scanned:
            return
        self._scanned = True
        pkg = importlib.import_module(self.package)  # type: ignore[arg-type]
        for info in pkgutil.iter_modules(pkg.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self.package}.{info.name}")

    def add(self, name: str, entry: T | str, *, replace: bool = False) -> None:
        """Register ``entry`` (an object or a lazy ``"module:attribute"`` path) under ``name``."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind}: a name must be a non-empty string, got {name!r}")
        if name in self._entries and not replace and self._entries[name] is not entry:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry

    def register(self, name: str, *, replace: bool = False) -> Callable[[T], T]:
        """Decorator form of ``add``."""

        def deco(obj: T) -> T:
            self.add(name, obj, replace=replace)
            return obj

        return deco

    def remove(self, name: str) -> None:
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        if name not in self._entries:
            self._scan()
        if name not in self._entries:
            known = ", ".join(sorted(self._entries)) or "none"
            raise ValueError(f"{self.kind}: unknown {self.kind} {name!r} (known: {known})")
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            entry = importlib.import_module(module)
            if attr:
                entry = getattr(entry, attr)
            self._entries[name] = entry
        return entry  # type: ignore[return-value]

    def names(self) -> list[str]:
        self._scan()
        return list(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        for name in self.names():
            yield name, self.get(name)

    __getitem__ = get

    def __contains__(self, name: object) -> bool:
        if name not in self._entries:
            self._scan()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


def load_all(registry: Registry[Any]) -> dict[str, Any]:
    """Every entry of ``registry``, loaded."""
    return dict(registry.items())

"""The proxy registry: ``Proxy`` (what a registered proxy declares), ``PROXIES`` and the ``@proxy``
decorator every proxy module uses (``paretolm.proxies`` explains the conventions)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from paretolm.core import settings as fields
from paretolm.core.registry import Registry


@dataclass(frozen=True)
class Proxy:
    name: str
    fn: Callable[..., float]
    needs_data: bool = False
    doc: str = ""
    settings: type | None = None  # a dataclass of the proxy's knobs, or None
    # Reads something trained beforehand (supernet_loss: a supernet): takes the spec like an
    # analytic proxy, but is not one (analyses that score "every analytic proxy" leave it out).
    trained: bool = False
    # settings -> the path of what it reads (made by a rule of the workflow before any scoring job)
    artifact: Callable[[Any], Any] | None = None
    # settings -> seconds spent once before scoring any candidate (a trained artifact's training)
    setup_seconds: Callable[[Any], float] | None = None
    # (validated config, settings) -> None; ValueError naming the key the proxy lacks
    check: Callable[[Mapping[str, Any], Any], None] | None = None

    def make_settings(self, values: Mapping[str, Any] | None) -> Any:
        """The proxy's settings object from a config mapping (None: the proxy has no knobs)."""
        if self.settings is None:
            if values:
                raise ValueError(f"proxies.settings.{self.name}: proxy {self.name!r} takes no settings")
            return None
        return fields.from_config(self.settings, values, f"proxies.settings.{self.name}")


PROXIES: Registry[Proxy] = Registry("proxy", package="paretolm.proxies")


def proxy(
    name: str,
    needs_data: bool = False,
    doc: str = "",
    settings: type | None = None,
    trained: bool = False,
    artifact: Callable[[Any], Any] | None = None,
    setup_seconds: Callable[[Any], float] | None = None,
    check: Callable[[Mapping[str, Any], Any], None] | None = None,
) -> Callable:
    """Register the decorated function as proxy ``name`` (the fields of ``Proxy``)."""

    def deco(fn: Callable[..., float]) -> Callable[..., float]:
        PROXIES.add(
            name,
            Proxy(
                name=name,
                fn=fn,
                needs_data=needs_data,
                doc=doc or (fn.__doc__ or "").strip(),
                settings=settings,
                trained=trained,
                artifact=artifact,
                setup_seconds=setup_seconds,
                check=check,
            ),
        )
        return fn

    return deco


def get(name: str) -> Proxy:
    return PROXIES.get(name)


def registry() -> dict[str, Proxy]:
    return dict(PROXIES.items())


__all__ = ["PROXIES", "Proxy", "get", "proxy", "registry"]

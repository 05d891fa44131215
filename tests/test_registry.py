"""The one registry class: named entries, lazy "module:attribute" loading, package scanning,
errors that list what exists."""

from __future__ import annotations

import pytest

from paretolm.core.registry import Registry


def test_add_get_and_listing() -> None:
    reg: Registry[int] = Registry("widget")
    reg.add("b", 2)
    reg.register("a")(1)
    assert reg.get("a") == 1 and reg["b"] == 2 and reg.names() == ["b", "a"] and "a" in reg and len(reg) == 2
    assert dict(reg.items()) == {"a": 1, "b": 2}
    with pytest.raises(ValueError, match=r"^widget: unknown widget .c. \(known: a, b\)$"):
        reg.get("c")
    with pytest.raises(ValueError, match="already registered"):
        reg.add("a", 3)
    reg.add("a", 3, replace=True)
    assert reg.get("a") == 3
    reg.remove("a")
    assert reg.names() == ["b"]


def test_lazy_entries_load_on_first_use() -> None:
    reg: Registry = Registry("thing")
    reg.add("join", "os.path:join")
    reg.add("broken", "paretolm.no_such_module:thing")
    reg.add("path", "os.path")
    assert reg.names() == ["join", "broken", "path"]  # listing imports nothing
    import os.path

    assert reg.get("join") is os.path.join and reg.get("path") is os.path
    with pytest.raises(ModuleNotFoundError):
        reg.get("broken")


def test_package_registries_find_their_modules() -> None:
    from paretolm.core.backbones import BACKBONES
    from paretolm.hardware.runtimes import RUNTIMES
    from paretolm.proxies import PROXIES
    from paretolm.search.methods import METHODS

    assert {"gpt2", "opt", "transformer_xl", "merino", "par", "bert"} <= set(BACKBONES.names())
    assert {"decoder_params", "merino_entropy", "synflow", "jacob_cov"} <= set(PROXIES.names())
    assert "lts" in METHODS.names()
    assert {"torch", "torch_int8", "onnxruntime"} <= set(RUNTIMES.names())

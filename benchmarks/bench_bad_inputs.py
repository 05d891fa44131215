"""Bad inputs, tried systematically: how many get a named error, how many crash, how many pass.

For every key of the config schema it tries a wrong type, a misspelt sibling key and, for numbers,
a negative and an absurd value; for every gene of every backbone's example spec a wrong type, zero,
a negative and an absurd value; for every space file a misspelt key, a foreign gene and a broken
gene declaration. An outcome is "named" when a ValueError's message starts with the dotted key (or
the spec field), "crash" when any other exception escapes, and "accepted" when nothing objects.

    python benchmarks/bench_bad_inputs.py      # writes benchmarks/results/bad_inputs.json
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from paretolm.config import load_schema, validate_config
from paretolm.core.arch import ArchSpec
from paretolm.core.backbones import BACKBONES
from paretolm.core.spaces import SearchSpace

ROOT = Path(__file__).resolve().parents[1]
VALID = {("mem_len", "0")}  # a Transformer-XL without memory
BASE = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def leaves(schema: dict, path: tuple = ()) -> list[tuple[tuple, dict]]:
    out = []
    for key, sub in (schema.get("properties") or {}).items():
        out.append(((*path, key), sub))
        if sub.get("type") == "object" or "properties" in sub:
            out += leaves(sub, (*path, key))
    return out


def set_in(config: dict, path: tuple, value: Any) -> dict:
    config = copy.deepcopy(config)
    node = config
    for key in path[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            return config
    node[path[-1]] = value
    return config


def classify(fn, key: str, fields: tuple[str, ...] = ()) -> str:
    """named: the error starts with the key tried (or, for a spec, with one of its fields, as when
    a default no longer fits another gene)."""
    try:
        fn()
    except ValueError as e:
        head = re.sub(r"\[\d+\]", "", str(e).split(":", 1)[0]).split(".")[0]
        wanted = re.sub(r"\[\d+\]", "", key).split(".")[0]
        return "named" if head == wanted or head in fields else f"misnamed: {e}"
    except Exception as e:  # noqa: BLE001  (a crash is what this counts)
        return f"crash: {type(e).__name__}: {e}"
    return "accepted"


def config_cases() -> list[tuple[str, Any]]:
    cases = []
    for path, sub in leaves(load_schema(ROOT)):
        key = ".".join(path)
        kinds = sub.get("type", [])
        kinds = [kinds] if isinstance(kinds, str) else kinds
        bad: list[Any] = [["a", "list"]] if "array" not in kinds else [{"a": "mapping"}]
        if "integer" in kinds or "number" in kinds:
            bad += ["many", -7, 10**18] if "minimum" in sub or "exclusiveMinimum" in sub else ["many"]
        if "boolean" in kinds:
            bad += ["perhaps", 3]
        if "enum" in sub:
            bad.append("no-such-choice")
        if kinds == ["object"] or "properties" in sub:
            bad.append({"no_such_key": 1})
        for value in bad:
            cases.append((key, set_in(BASE, path, value)))
        misspelt = (*path[:-1], path[-1] + "x")  # a misspelt key beside it
        cases.append((".".join(misspelt), set_in(BASE, misspelt, 1)))
    return cases


def spec_cases() -> list[tuple[str, dict]]:
    cases = []
    for _, plugin in BACKBONES.items():
        example = plugin.example
        for gene, value in example.items():
            if gene == "backbone":
                continue
            for bad in ("x", 0, -3, 10**12, True, [1.5]):  # None means "the default", not bad
                if bad == value or (gene, repr(bad)) in VALID:
                    continue
                cases.append((gene, {**example, gene: bad}))
        cases.append(("colour", {**example, "colour": 1}))
    return cases


def space_cases() -> list[tuple[str, dict]]:
    cases = []
    for path in sorted((ROOT / "config" / "spaces").glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        gene = next(iter(data["genes"]))
        cases += [
            ("constraint", {**data, "constraint": {}}),
            (f"genes.{gene}", {**data, "genes": {**data["genes"], gene: {"choices": [1], "stpe": 2}}}),
            ("genes.no_such_gene", {**data, "genes": {**data["genes"], "no_such_gene": [1]}}),
            (f"genes.{gene}", {**data, "genes": {**data["genes"], gene: "big"}}),
            ("backbone", {**data, "backbone": "no_such_backbone"}),
            ("fixed", {**data, "fixed": ["not", "a", "mapping"]}),
        ]
    return cases


def main() -> None:
    t0 = time.perf_counter()
    results: dict[str, Counter] = {}
    examples: dict[str, list[str]] = {}
    groups = {
        "config": [(k, lambda c=c: validate_config(c, ROOT), ()) for k, c in config_cases()],
        "spec": [(k, lambda d=d: ArchSpec.from_dict(d), tuple(d)) for k, d in spec_cases()],
        "space": [(k, lambda d=d: SearchSpace.from_dict(d, name="bad"), ()) for k, d in space_cases()],
    }
    for group, cases in groups.items():
        counter: Counter = Counter()
        for key, fn, fields in cases:
            outcome = classify(fn, key, fields)
            counter[outcome.split(":", 1)[0]] += 1
            if outcome != "named":
                examples.setdefault(group, []).append(f"{key}: {outcome[:200]}")
        results[group] = counter
    total = sum((c for c in results.values()), Counter())
    out = {
        "inputs": sum(total.values()),
        "outcomes": dict(total),
        "by_group": {g: dict(c) for g, c in results.items()},
        "not_named": examples,
        "seconds": time.perf_counter() - t0,
    }
    path = ROOT / "benchmarks" / "results" / "bad_inputs.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: out[k] for k in ("inputs", "outcomes", "by_group")}, indent=2))


if __name__ == "__main__":
    main()

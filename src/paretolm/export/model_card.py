"""The model card (``README.md``) of an exported model: architecture, hardware numbers, quality, origin.

Every number comes from a table the workflow wrote (the frontier row, the evaluation row, the
training summary) and its provenance; what no table gives is written as "not measured".
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from paretolm.core.arch import ArchSpec
from paretolm.core.counting import count

NOT_MEASURED = "not measured"
# Profile settings worth stating next to a latency: they change the number.
_PROTOCOL_KEYS = (
    "batch",
    "seq_len",
    "latency",
    "context",
    "decode_tokens",
    "clock",
    "warmup",
    "min_repeats",
    "max_repeats",
    "rel_iqr_max",
)
_TARGET_KEYS = ("device", "runtime", "dtype", "threads", "arch")


def _num(value: Any, digits: int = 4) -> str | None:
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return None if not math.isfinite(v) else f"{v:.{digits}g}"


def _get(row: pd.Series | Mapping[str, Any] | None, key: str) -> Any:
    if row is None:
        return None
    return row.get(key) if hasattr(row, "get") else None


def _settings(prov: Mapping[str, Any] | None) -> tuple[str | None, dict[str, Any], dict[str, Any]]:
    """(target name, target settings, profile settings) recorded in a frontier's or an
    evaluation's provenance (their config parts store them differently)."""
    if not prov:
        return None, {}, {}
    config = prov.get("config") or {}
    name = (prov.get("wildcards") or {}).get("hardware")
    hw = config.get("hardware") or {}
    if "target" in hw:  # evaluation: {name, target, profile}
        return hw.get("name") or name, dict(hw.get("target") or {}), dict(hw.get("profile") or {})
    return name, dict(hw), dict(config.get("profile") or {})


def _measurement(label: str, row: Any, prov: Mapping[str, Any] | None) -> list[str]:
    latency, memory = _num(_get(row, "latency_ms")), _num(_get(row, "peak_memory_mb"))
    if latency is None and memory is None:
        return []
    name, target, profile = _settings(prov)
    iqr = _num(_get(row, "latency_iqr_ms"), 3)
    lines = [f"**{label}**", ""]
    lines.append(
        f"* latency: {latency + ' ms' if latency else NOT_MEASURED}" + (f" (IQR {iqr} ms)" if latency and iqr else "")
    )
    lines.append(f"* peak memory: {memory + ' MB' if memory else NOT_MEASURED}")
    if name or target:
        where = ", ".join(f"{k} {target[k]}" for k in _TARGET_KEYS if target.get(k) is not None)
        lines.append(f"* target: `{name or '?'}` ({where or 'settings not recorded'})")
    if profile:
        lines.append("* protocol: " + ", ".join(f"{k} {profile[k]}" for k in _PROTOCOL_KEYS if k in profile))
    return [*lines, ""]


def _quality(evaluation: Any) -> list[str]:
    if evaluation is None:
        return [f"Perplexity and zero-shot accuracy: {NOT_MEASURED} (export with `--eval`).", ""]
    items = dict(evaluation.items()) if hasattr(evaluation, "items") else {}
    ppl = {k: v for k, v in items.items() if k.endswith("_ppl") or k.endswith("bits_per_byte")}
    shots = {k: v for k, v in items.items() if "shot_" in k and k[0].isdigit()}
    lines = ["| metric | value |", "|---|---|"]
    for k, v in [*ppl.items(), *shots.items()]:
        if _num(v) is not None:
            lines.append(f"| `{k}` | {_num(v)} |")
    if len(lines) == 2:
        return [f"Perplexity and zero-shot accuracy: {NOT_MEASURED}.", ""]
    return [*lines, ""]


def _origin(row: Any, prov: Mapping[str, Any] | None, info: Mapping[str, Any]) -> list[str]:
    if row is None and not prov:
        return ["Not taken from a search frontier (trained from a given spec).", ""]
    config = (prov or {}).get("config") or {}
    search = config.get("search") or {}
    lines = []
    if search:
        known = [
            f"measure {search['measure']}" if search.get("measure") else "",
            f"space `{search['space']}`" if search.get("space") else "",
            f"seed {search['seed']}" if search.get("seed") is not None else "",
        ]
        details = ", ".join(k for k in known if k)
        lines.append(f"* search method: `{search.get('method')}`" + (f" ({details})" if details else ""))
        objectives = search.get("objectives")
        if objectives:
            lines.append(f"* objectives: `{json.dumps(objectives, sort_keys=True)}`")
    if row is not None:
        lines.append(
            f"* frontier arch_id: `{row.get('arch_id')}`"
            + (f", rank {info['rank']} by `{info.get('rank_key')}`" if info.get("rank") is not None else "")
        )
    if prov:
        code = prov.get("code") or {}
        lines.append(
            f"* frontier config hash: `{prov.get('config_hash')}` (stage `{prov.get('stage')}`, "
            f"created {prov.get('created')}, paretolm {code.get('paretolm')}"
            + (f", revision {code['git_revision']}" if code.get("git_revision") else "")
            + ")"
        )
    return [*lines, ""]


def _training(record: Mapping[str, Any]) -> list[str]:
    summary, config = record.get("summary") or {}, record.get("config") or {}
    train = config.get("train") or {}
    if not summary and not train:
        return ["Training: not recorded.", ""]
    lines = []
    if summary:
        lines.append(
            f"* steps: {summary.get('steps')}, final training loss {_num(summary.get('final_loss'))}, "
            f"{_num(summary.get('seconds'), 3)} s"
        )
    data = {k: train.get(k) for k in ("dataset", "tokenizer") if train.get(k)}
    data.update({k: config[k] for k in ("dataset", "tokenizer") if isinstance(config.get(k), str)})
    if data:
        lines.append("* data: " + ", ".join(f"{k} `{v}`" for k, v in data.items()))
    hyper = {k: v for k, v in train.items() if k not in ("dataset", "tokenizer", "cache_dir")}
    if hyper:
        lines.append(f"* recipe: `{json.dumps(hyper, sort_keys=True, default=str)}`")
    if record.get("config_hash"):
        lines.append(f"* training config hash: `{record['config_hash']}`")
    return [*lines, ""]


def _usage(info: Mapping[str, Any]) -> list[str]:
    if info.get("stock"):
        head = [f"A stock `transformers.{info['model_class']}`: paretolm is not needed to load it.", "", "```python"]
    else:
        head = [
            "The paretolm wrapper (`model_type: paretolm`): importing `paretolm.models.hf` registers it "
            "with the Auto classes (no `trust_remote_code`).",
            "",
            "```python",
            "import paretolm.models.hf",
        ]
    return [
        *head,
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        'model = AutoModelForCausalLM.from_pretrained("path/to/this/folder")',
        'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")',
        "```",
        "",
    ]


def card(
    spec: ArchSpec,
    info: Mapping[str, Any],
    *,
    row: Any = None,
    frontier_prov: Mapping[str, Any] | None = None,
    evaluation: Any = None,
    eval_prov: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
) -> str:
    """The model card text (Markdown with a YAML header)."""
    seq_len = min(spec.max_seq_len, 192)
    c = count(spec, seq_len)
    lines = [
        "---",
        "library_name: transformers",
        "pipeline_tag: text-generation",
        f"tags: [paretolm, {spec.backbone}]",
        "---",
        "",
        f"# paretolm {spec.backbone} `{spec.arch_id}`",
        "",
        "A Transformer language model found by paretolm's hardware-aware architecture search.",
        "",
        "## Loading",
        "",
        *_usage(info),
        "## Architecture",
        "",
        f"* backbone `{spec.backbone}`, {spec.num_layers} layers, vocabulary {spec.vocab_size}, "
        f"context {spec.max_seq_len}",
        f"* parameters: {c.decoder_params:,} decoder, {c.embedding_params:,} embedding, {c.total_params:,} total",
        f"* forward FLOPs at {seq_len} tokens: {c.flops:,}",
        "",
        "```json",
        spec.to_json(),
        "```",
        "",
        "## Latency and memory",
        "",
    ]
    hardware = [
        *_measurement("As searched (frontier row)", row, frontier_prov),
        *_measurement("As trained (evaluation)", evaluation, eval_prov),
    ]
    lines += hardware or [f"Latency and memory: {NOT_MEASURED} (export with `--frontier` or `--eval`).", ""]
    lines += [
        "## Perplexity and zero-shot accuracy",
        "",
        *_quality(evaluation),
        "## How it was found",
        "",
        *_origin(row, frontier_prov, info),
        "## Training",
        "",
        *_training(training or {}),
    ]
    return "\n".join(lines).rstrip() + "\n"


__all__ = ["NOT_MEASURED", "card"]

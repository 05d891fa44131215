"""Readers for peers' published measurements: the LiteTransformerSearch (LTS) experiment logs.

``../shared/data/ground-truth/lts-archai`` holds one folder per experiment set:

* ``random_{GPT2,TransXL}_{wt103,lm1b}`` and ``random_TransXL_wt103_homogeneous``: fully trained
  random architectures, ``config_<i>/j<k>/model_config.yaml`` each, keyed ``config_<i>_j<k>`` in
  ``params_summary.yaml`` and ``ppl_summary.yaml`` (``valid_ppl``, ``test_ppl``, ...);
* ``pareto_{GPT2,TransXL}_lm1b_{arm,corei7,titanxp}``: the trained Pareto-frontier models per
  device, ``M<k>/model_config.yaml``, with ``latency_summary.yaml`` (ms), ``memory_summary.yaml``
  (MB) and a ``ppl_summary.yaml`` holding one perplexity per model (LTS does not say which split).

``lts_spec_from_model_config`` turns one LTS model config into an ``ArchSpec``;
``iter_lts_archs`` yields one record per trained architecture and ``load_lts_archs`` gives them as
a pandas table. The parameter counts LTS reports are carried as they are (``params_*`` columns)
so that ``paretolm.core.counting`` can be compared with them (see ``docs/counting.md``).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from paretolm.core.arch import ArchSpec

DATA_ENV = "PARETOLM_DATA"
LTS_SUBDIR = Path("ground-truth") / "lts-archai"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BACKBONE_OF_FAMILY = {"GPT2": "gpt2", "TransXL": "transformer_xl"}
_SET_RE = re.compile(r"^(random|pareto)_(GPT2|TransXL)_([A-Za-z0-9]+)(?:_([A-Za-z0-9_]+))?$")


def data_root() -> Path:
    """``$PARETOLM_DATA``, or ``../shared/data`` next to the repository root (then the cwd)."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[3]
    candidate = repo / ".." / "shared" / "data"
    return candidate if candidate.is_dir() else Path("../shared/data")


def lts_root(root: str | os.PathLike | None = None) -> Path:
    """The lts-archai folder: ``root`` itself if it holds the sets, else ``root/ground-truth/lts-archai``."""
    base = Path(root) if root is not None else data_root()
    if (base / LTS_SUBDIR).is_dir():
        return base / LTS_SUBDIR
    return base


def _load_yaml(path: Path) -> Any:
    with open(path) as fh:
        return yaml.load(fh, Loader=_Loader)  # safe loader (libyaml's when available)


def backbone_of_set(set_name: str) -> str:
    """``random_GPT2_wt103`` -> ``gpt2``; ``pareto_TransXL_lm1b_arm`` -> ``transformer_xl``."""
    m = _SET_RE.match(set_name)
    if not m:
        raise ValueError(f"set: {set_name!r} is not an LTS set name like 'random_GPT2_wt103'")
    return _BACKBONE_OF_FAMILY[m.group(2)]


def lts_spec_from_model_config(config: str | os.PathLike | Mapping[str, Any], backbone: str | None = None) -> ArchSpec:
    """An ``ArchSpec`` for one LTS ``model_config.yaml`` (a path or the loaded mapping).

    Mapping: ``n_token`` -> ``vocab_size``; ``cutoffs`` keep only values below ``n_token`` (LTS
    appends ``n_token`` and drops larger ones itself); ``d_embed`` and ``d_head`` of -1 mean the
    defaults (``d_model`` and ``d_model // n_head``); ``tgt_len`` -> ``max_seq_len`` (LTS's GPT-2
    learns ``tgt_len`` positions); ``tie_weight`` -> ``tie_weights``. The backbone comes from
    ``backbone`` or, for a path, from the set folder it lies in (``..._GPT2_...`` / ``..._TransXL_...``).
    """
    if not isinstance(config, Mapping):
        path = Path(config)
        if backbone is None:
            for part in reversed(path.resolve().parts):
                if _SET_RE.match(part):
                    backbone = backbone_of_set(part)
                    break
        config = _load_yaml(path)
        if not isinstance(config, Mapping):
            raise ValueError(f"model_config: {path} does not hold a mapping")
    if backbone not in ("gpt2", "transformer_xl"):
        raise ValueError(f"backbone: LTS configs are 'gpt2' or 'transformer_xl', got {backbone!r}")
    for key in ("n_layer", "d_model", "n_head", "d_inner", "n_token"):
        if key not in config:
            raise ValueError(f"{key}: missing from LTS model config")
    n_token = int(config["n_token"])
    d_embed = int(config.get("d_embed", -1) or -1)
    values: dict[str, Any] = {
        "backbone": backbone,
        "n_layer": config["n_layer"],
        "d_model": config["d_model"],
        "n_head": list(config["n_head"]) if isinstance(config["n_head"], list) else config["n_head"],
        "d_inner": list(config["d_inner"]) if isinstance(config["d_inner"], list) else config["d_inner"],
        "div_val": int(config.get("div_val", 1)),
        "d_embed": None if d_embed < 0 else d_embed,
        "cutoffs": [int(c) for c in (config.get("cutoffs") or []) if int(c) < n_token],
        "vocab_size": n_token,
        "max_seq_len": int(config.get("tgt_len") or 192),
        "tie_weights": bool(config.get("tie_weight", True)),
    }
    if backbone == "transformer_xl":
        d_head = config.get("d_head", -1)
        if isinstance(d_head, list) or (d_head is not None and int(d_head) > 0):
            values["d_head"] = d_head
        values["mem_len"] = int(config.get("mem_len", 192))
        values["pre_lnorm"] = bool(config.get("pre_lnorm", False))
    return ArchSpec.from_dict(values)


@dataclass(frozen=True)
class LTSArch:
    """One trained LTS architecture with what LTS measured for it (NaN where it measured nothing)."""

    set: str
    kind: str  # "random" or "pareto"
    backbone: str
    dataset: str  # "wt103" or "lm1b"
    variant: str | None  # device of a pareto set ("arm", "corei7", "titanxp"), "homogeneous", or None
    job: str  # "config_0_j0" or "M1"
    path: str  # model_config.yaml, relative to the lts-archai folder
    spec: ArchSpec
    params_nonembedding: float
    params_total: float
    params_attn: float
    params_ffn: float
    params_adaemb: float
    n_nonemb_param: float  # model_config.yaml's own count (Transformer-XL random sets only)
    n_all_param: float
    valid_ppl: float
    test_ppl: float
    ppl: float  # valid_ppl for random sets; the pareto sets' single ppl_summary number
    latency_ms: float
    memory_mb: float

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["spec"] = self.spec.to_json()
        row["arch_id"] = self.spec.arch_id
        return row


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


def _job_key(set_dir: Path, cfg_path: Path) -> str:
    rel = cfg_path.parent.relative_to(set_dir).parts
    return "_".join(rel)


def _job_sort_key(job: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", job))


def lts_sets(root: str | os.PathLike | None = None) -> list[str]:
    """Names of the LTS sets present under ``root`` (sorted)."""
    base = lts_root(root)
    if not base.is_dir():
        raise FileNotFoundError(f"LTS ground truth not found at {base} (set ${DATA_ENV})")
    return sorted(p.name for p in base.iterdir() if p.is_dir() and _SET_RE.match(p.name))


def iter_lts_archs(root: str | os.PathLike | None = None, sets: list[str] | None = None) -> Iterator[LTSArch]:
    """Every trained architecture of every (or the named) LTS set, in set then job order."""
    base = lts_root(root)
    for set_name in sets or lts_sets(root):
        m = _SET_RE.match(set_name)
        if not m:
            raise ValueError(f"sets: {set_name!r} is not an LTS set name")
        kind, family, dataset, variant = m.groups()
        backbone = _BACKBONE_OF_FAMILY[family]
        set_dir = base / set_name
        if not set_dir.is_dir():
            raise FileNotFoundError(f"LTS set {set_name!r} not found under {base}")
        summaries = {}
        for name in ("params", "ppl", "latency", "memory"):
            f = set_dir / f"{name}_summary.yaml"
            summaries[name] = (_load_yaml(f) or {}) if f.exists() else {}
        configs = {_job_key(set_dir, p): p for p in set_dir.glob("**/model_config.yaml")}
        for job in sorted(configs, key=_job_sort_key):
            cfg_path = configs[job]
            cfg = _load_yaml(cfg_path)
            spec = lts_spec_from_model_config(cfg, backbone)
            params = summaries["params"].get(job) or {}
            ppl = summaries["ppl"].get(job)
            if isinstance(ppl, Mapping):
                valid, test = _num(ppl.get("valid_ppl")), _num(ppl.get("test_ppl"))
                single = valid
            else:
                valid, test, single = math.nan, math.nan, _num(ppl)
            yield LTSArch(
                set=set_name,
                kind=kind,
                backbone=backbone,
                dataset=dataset,
                variant=variant,
                job=job,
                path=str(cfg_path.relative_to(base)),
                spec=spec,
                params_nonembedding=_num(params.get("nonembedding")),
                params_total=_num(params.get("total")),
                params_attn=_num(params.get("Attn")),
                params_ffn=_num(params.get("FFN")),
                params_adaemb=_num(params.get("AdaEmb")),
                n_nonemb_param=_num(cfg.get("n_nonemb_param")),
                n_all_param=_num(cfg.get("n_all_param")),
                valid_ppl=valid,
                test_ppl=test,
                ppl=single,
                latency_ms=_num(summaries["latency"].get(job)),
                memory_mb=_num(summaries["memory"].get(job)),
            )


def load_lts_archs(root: str | os.PathLike | None = None, sets: list[str] | None = None):
    """``iter_lts_archs`` as a pandas DataFrame (``spec`` as canonical JSON, plus ``arch_id``)."""
    rows = [a.to_row() for a in iter_lts_archs(root, sets)]
    return pd.DataFrame(rows)


__all__ = [
    "LTSArch",
    "backbone_of_set",
    "data_root",
    "iter_lts_archs",
    "load_lts_archs",
    "lts_root",
    "lts_sets",
    "lts_spec_from_model_config",
]

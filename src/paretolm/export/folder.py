"""Export a trained model as a self-contained Hugging Face folder.

``export_model(model_dir, out, ...)`` writes safetensors weights, ``config.json``, the tokenizer,
``generation_config.json`` and a model card (``README.md``, ``paretolm.export.model_card``). A homogeneous
``gpt2`` spec (one ``n_head`` and ``d_inner`` for every layer, plain embedding of width
``d_model``) becomes a stock ``transformers.GPT2LMHeadModel`` and a homogeneous ``opt`` spec an
``OPTForCausalLM``, so they load without paretolm; every other spec keeps the paretolm wrapper
(model type ``paretolm``), which loads after ``import paretolm.models.hf``. Either way the folder
loads with ``AutoModelForCausalLM.from_pretrained`` and never needs ``trust_remote_code``.

The folder is written to a temporary sibling and renamed into place, and a stock conversion is
checked against the original's logits before it is written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tokenizers import Tokenizer

from paretolm.core.arch import ArchSpec
from paretolm.core.artifacts import atomic_dir, read_provenance
from paretolm.data import EOS
from paretolm.export.model_card import card
from paretolm.training.trainer import load_model

# How the rows of a frontier are ranked for ``--rank`` and for the workflow's folder names.
RANK_KEY = "latency_ms"


# -- which specs have a stock class ------------------------------------------------------------------
def stock_family(spec: ArchSpec) -> str | None:
    """``"gpt2"``, ``"opt"`` or ``"llama"`` when ``spec`` maps exactly onto that stock
    ``transformers`` model, else None.

    Stock GPT-2, OPT and Llama have one head count (and key/value head count) and FFN width for
    all layers; GPT-2 and OPT also a plain (non-adaptive) token embedding of width ``d_model`` and
    no projection around it."""
    if spec.backbone == "llama":
        return "llama" if spec.plugin.homogeneous(spec) else None
    if spec.backbone not in ("gpt2", "opt"):
        return None
    if len(set(spec.n_head)) != 1 or len(set(spec.d_inner)) != 1:
        return None
    if (spec.get("div_val") or 1) != 1 or (spec.get("d_embed") or spec.d_model) != spec.d_model:
        return None
    return spec.backbone


def _token_ids(tokenizer: Any) -> dict[str, int | None]:
    eos = getattr(tokenizer, "eos_token_id", None) if tokenizer is not None else None
    bos = getattr(tokenizer, "bos_token_id", None) if tokenizer is not None else None
    return {"bos_token_id": bos if bos is not None else eos, "eos_token_id": eos, "pad_token_id": eos}


def _linear_t(linear: torch.nn.Linear) -> torch.Tensor:
    """An ``nn.Linear`` weight in GPT-2's ``Conv1D`` layout (in_features, out_features)."""
    return linear.weight.detach().t().contiguous()


def to_gpt2(backbone: torch.nn.Module, spec: ArchSpec, tokenizer: Any = None) -> torch.nn.Module:
    """The stock ``GPT2LMHeadModel`` holding ``backbone``'s weights (a paretolm ``GPT2LM``)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=spec.vocab_size,
        n_positions=spec.max_seq_len,
        n_embd=spec.d_model,
        n_layer=spec.n_layer,
        n_head=spec.n_head[0],
        n_inner=spec.d_inner[0],
        # paretolm's FFN is nn.GELU(approximate="tanh"); gelu_new computes the same formula in
        # Python ops and differs in the last bits, gelu_pytorch_tanh is the same kernel
        activation_function="gelu_pytorch_tanh",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        layer_norm_epsilon=backbone.ln_f.eps,
        tie_word_embeddings=spec.tie_weights,
        **_token_ids(tokenizer),
    )
    sd: dict[str, torch.Tensor] = {
        "transformer.wte.weight": backbone.wte.emb_layers[0].weight,
        "transformer.wpe.weight": backbone.wpe.weight,
        "transformer.ln_f.weight": backbone.ln_f.weight,
        "transformer.ln_f.bias": backbone.ln_f.bias,
    }
    for i, layer in enumerate(backbone.layers):
        p = f"transformer.h.{i}."
        sd.update(
            {
                p + "ln_1.weight": layer.ln_1.weight,
                p + "ln_1.bias": layer.ln_1.bias,
                p + "ln_2.weight": layer.ln_2.weight,
                p + "ln_2.bias": layer.ln_2.bias,
                # fused q|k|v rows in both layouts; Conv1D stores the transpose of nn.Linear
                p + "attn.c_attn.weight": _linear_t(layer.attn.qkv),
                p + "attn.c_attn.bias": layer.attn.qkv.bias,
                p + "attn.c_proj.weight": _linear_t(layer.attn.proj),
                p + "attn.c_proj.bias": layer.attn.proj.bias,
                p + "mlp.c_fc.weight": _linear_t(layer.mlp.fc),
                p + "mlp.c_fc.bias": layer.mlp.fc.bias,
                p + "mlp.c_proj.weight": _linear_t(layer.mlp.proj),
                p + "mlp.c_proj.bias": layer.mlp.proj.bias,
            }
        )
    if not spec.tie_weights:
        sd["lm_head.weight"] = backbone.head.weight
    return _loaded(GPT2LMHeadModel(config), sd)


def to_opt(backbone: torch.nn.Module, spec: ArchSpec, tokenizer: Any = None) -> torch.nn.Module:
    """The stock ``OPTForCausalLM`` holding ``backbone``'s weights (a paretolm ``OPTLM``)."""
    from transformers import OPTConfig, OPTForCausalLM

    config = OPTConfig(
        vocab_size=spec.vocab_size,
        hidden_size=spec.d_model,
        num_hidden_layers=spec.n_layer,
        ffn_dim=spec.d_inner[0],
        num_attention_heads=spec.n_head[0],
        max_position_embeddings=spec.max_seq_len,
        do_layer_norm_before=True,
        word_embed_proj_dim=spec.d_model,
        activation_function="relu",
        dropout=0.0,
        attention_dropout=0.0,
        layerdrop=0.0,
        enable_bias=True,
        tie_word_embeddings=spec.tie_weights,
        **_token_ids(tokenizer),
    )
    # OPT looks positions up at index position + 2 (a fairseq leftover): two unused rows in front
    wpe = backbone.wpe.weight.detach()
    positions = torch.cat([torch.zeros(2, wpe.size(1), dtype=wpe.dtype), wpe])
    d = spec.d_model
    sd: dict[str, torch.Tensor] = {
        "model.decoder.embed_tokens.weight": backbone.wte.emb_layers[0].weight,
        "model.decoder.embed_positions.weight": positions,
        "model.decoder.final_layer_norm.weight": backbone.ln_f.weight,
        "model.decoder.final_layer_norm.bias": backbone.ln_f.bias,
    }
    for i, layer in enumerate(backbone.layers):
        p = f"model.decoder.layers.{i}."
        w, b = layer.attn.qkv.weight.detach(), layer.attn.qkv.bias.detach()
        for j, name in enumerate(("q_proj", "k_proj", "v_proj")):
            sd[p + f"self_attn.{name}.weight"] = w[j * d : (j + 1) * d]
            sd[p + f"self_attn.{name}.bias"] = b[j * d : (j + 1) * d]
        # OPT's names: self_attn_layer_norm before attention, final_layer_norm before the FFN
        sd.update(
            {
                p + "self_attn.out_proj.weight": layer.attn.proj.weight,
                p + "self_attn.out_proj.bias": layer.attn.proj.bias,
                p + "self_attn_layer_norm.weight": layer.ln_1.weight,
                p + "self_attn_layer_norm.bias": layer.ln_1.bias,
                p + "final_layer_norm.weight": layer.ln_2.weight,
                p + "final_layer_norm.bias": layer.ln_2.bias,
                p + "fc1.weight": layer.mlp.fc.weight,
                p + "fc1.bias": layer.mlp.fc.bias,
                p + "fc2.weight": layer.mlp.proj.weight,
                p + "fc2.bias": layer.mlp.proj.bias,
            }
        )
    if not spec.tie_weights:
        sd["lm_head.weight"] = backbone.head.weight
    return _loaded(OPTForCausalLM(config), sd)


def to_llama(backbone: torch.nn.Module, spec: ArchSpec, tokenizer: Any = None) -> torch.nn.Module:
    """The stock ``LlamaForCausalLM`` holding ``backbone``'s weights (a paretolm ``LlamaLM``)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=spec.vocab_size,
        hidden_size=spec.d_model,
        intermediate_size=spec.d_inner[0],
        num_hidden_layers=spec.n_layer,
        num_attention_heads=spec.n_head[0],
        num_key_value_heads=spec.n_kv_head[0],
        head_dim=spec.head_dim,
        hidden_act="silu",
        max_position_embeddings=spec.max_seq_len,
        rms_norm_eps=backbone.ln_f.eps,
        rope_theta=spec.rope_theta,
        attention_bias=False,
        mlp_bias=False,
        attention_dropout=0.0,
        tie_word_embeddings=spec.tie_weights,
        **_token_ids(tokenizer),
    )
    sd: dict[str, torch.Tensor] = {
        "model.embed_tokens.weight": backbone.wte.weight,
        "model.norm.weight": backbone.ln_f.weight,
    }
    for i, layer in enumerate(backbone.layers):
        p = f"model.layers.{i}."
        q, k, v = layer.attn.qkv.weight.detach().split(layer.attn.splits)
        sd.update(
            {
                p + "input_layernorm.weight": layer.ln_1.weight,
                p + "self_attn.q_proj.weight": q,
                p + "self_attn.k_proj.weight": k,
                p + "self_attn.v_proj.weight": v,
                p + "self_attn.o_proj.weight": layer.attn.proj.weight,
                p + "post_attention_layernorm.weight": layer.ln_2.weight,
                p + "mlp.gate_proj.weight": layer.mlp.gate.weight,
                p + "mlp.up_proj.weight": layer.mlp.fc.weight,
                p + "mlp.down_proj.weight": layer.mlp.proj.weight,
            }
        )
    if not spec.tie_weights:
        sd["lm_head.weight"] = backbone.lm_head.weight
    return _loaded(LlamaForCausalLM(config), sd)


def _loaded(model: torch.nn.Module, sd: Mapping[str, torch.Tensor]) -> torch.nn.Module:
    """``model`` with every parameter taken from ``sd``; anything left over or missing is a bug."""
    own = dict(model.named_parameters())  # a tied lm_head is not listed twice
    missing = sorted(set(own) - set(sd))
    extra = sorted(set(sd) - set(own))
    if missing or extra:
        raise RuntimeError(
            f"export: weight mapping for {type(model).__name__} is incomplete "
            f"(missing {missing[:4]}, unexpected {extra[:4]})"
        )
    with torch.no_grad():
        for name, tensor in sd.items():
            if own[name].shape != tensor.shape:
                raise RuntimeError(
                    f"export: {name} has shape {tuple(tensor.shape)}, "
                    f"{type(model).__name__} expects {tuple(own[name].shape)}"
                )
            own[name].copy_(tensor)
    return model.eval()


def to_stock(model: torch.nn.Module, tokenizer: Any = None) -> torch.nn.Module | None:
    """The stock ``transformers`` model equal to ``model`` (a ``ParetoLMForCausalLM``), or None;
    its config takes the special token ids of ``tokenizer``."""
    spec = model.config.arch_spec
    family = stock_family(spec)
    if family is None:
        return None
    convert = {"gpt2": to_gpt2, "opt": to_opt, "llama": to_llama}[family]
    return convert(model.backbone, spec, tokenizer)


def check_same_logits(
    original: torch.nn.Module, exported: torch.nn.Module, vocab_size: int, seq_len: int, atol: float = 1e-4
) -> None:
    """Raise RuntimeError when the two models' logits differ on a seeded random batch."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, vocab_size, (2, max(1, min(seq_len, 16))), generator=gen)
    with torch.no_grad():
        a = original(input_ids=x).logits.float()
        b = exported(input_ids=x).logits.float()
    diff = float((a - b).abs().max())
    if not diff <= atol:
        raise RuntimeError(f"export: the {type(exported).__name__} logits differ from the original's by {diff:.3g}")


# -- tokenizers ---------------------------------------------------------------------------------------
def find_tokenizer(model_dir: str | os.PathLike, given: str | os.PathLike | None = None) -> Any:
    """The tokenizer of a trained model: ``given`` (a folder ``AutoTokenizer`` loads, or a
    ``tokenizers`` JSON file), else the model folder itself, else ``<model_dir>/../tokenizer``
    (where ``paretolm train`` saves it). FileNotFoundError when none is found."""
    from transformers import AutoTokenizer

    model_dir = Path(model_dir)
    candidates = [Path(given)] if given else [model_dir, model_dir.parent / "tokenizer"]
    for path in candidates:
        if path.is_file():
            return tokenizer_from_file(path)
        if (path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file():
            return AutoTokenizer.from_pretrained(str(path))
    raise FileNotFoundError(
        f"tokenizer: none found in {' or '.join(map(str, candidates))}; "
        "give --tokenizer (a tokenizer folder or tokenizer.json)"
    )


def tokenizer_from_file(path: str | os.PathLike) -> Any:
    """A ``tokenizers`` JSON file (as cached under ``train.cache_dir``) as a fast tokenizer."""
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer.from_file(str(path))
    vocab = raw.get_vocab()
    eos = next((t for t in (EOS["bpe"], EOS["word"]) if t in vocab), None)
    unk = "<unk>" if "<unk>" in vocab else eos
    return PreTrainedTokenizerFast(tokenizer_object=raw, eos_token=eos, bos_token=eos, unk_token=unk)


def save_tokenizer(tokenizer: Any, folder: str | os.PathLike, max_length: int | None = None) -> None:
    """``tokenizer.save_pretrained(folder)`` with a finite ``model_max_length`` (the model's context)."""
    if max_length is not None:
        tokenizer.model_max_length = max_length
    tokenizer.save_pretrained(str(folder))


# -- frontier rows ------------------------------------------------------------------------------------
def ranked(frontier: pd.DataFrame, key: str = RANK_KEY) -> pd.DataFrame:
    """The frontier sorted by ``key`` (ascending; ties by ``arch_id``), rank 0 first."""
    if key not in frontier.columns:
        raise ValueError(
            f"--sort-by: the frontier has no column {key!r} (columns: {', '.join(map(str, frontier.columns))})"
        )
    return frontier.sort_values([key, "arch_id"], kind="stable").reset_index(drop=True)


def frontier_row(frontier: pd.DataFrame, rank: int, key: str = RANK_KEY) -> pd.Series:
    """Row ``rank`` (0-based) of the frontier sorted by ``key``."""
    table = ranked(frontier, key)
    if not 0 <= rank < len(table):
        raise ValueError(f"--rank: {rank} is outside the frontier's {len(table)} rows (0 to {len(table) - 1})")
    return table.iloc[rank]


def trained_spec(spec: ArchSpec, vocab_size: int, seq_len: int) -> ArchSpec:
    """The spec as the validation half trains it (``training.select_archs``): the tokenizer's
    vocabulary and at least the training sequence length."""
    return spec.plugin.retarget(spec, vocab_size, max(spec.max_seq_len, seq_len))


def match_row(table: pd.DataFrame, spec: ArchSpec) -> pd.Series | None:
    """The row of ``table`` (with ``spec`` and ``arch_id`` columns: a frontier or an evaluation)
    whose architecture, retargeted to ``spec``'s vocabulary and context, is ``spec``."""
    hit = table[table["arch_id"] == spec.arch_id]
    if len(hit):
        return hit.iloc[0]
    for _, row in table.iterrows():
        other = ArchSpec.from_json(row["spec"])
        if (
            other.backbone == spec.backbone
            and other.plugin.retarget(other, spec.vocab_size, spec.max_seq_len).arch_id == spec.arch_id
        ):
            return row
    return None


# -- the folder ---------------------------------------------------------------------------------------
def export_model(
    model_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    tokenizer: Any = None,
    frontier: pd.DataFrame | None = None,
    frontier_prov: Mapping[str, Any] | None = None,
    evaluation: pd.Series | None = None,
    eval_prov: Mapping[str, Any] | None = None,
    rank: int | None = None,
    rank_key: str = RANK_KEY,
    stock: bool = True,
) -> dict[str, Any]:
    """Write the Hugging Face folder of the model saved in ``model_dir`` (``training.save_model``) to ``out``.

    ``frontier`` (a table with provenance ``frontier_prov``) and ``evaluation`` (one row of an
    evaluation table, provenance ``eval_prov``) give the model card its hardware numbers, quality
    and origin; the frontier row is the one whose architecture the model is (``match_row``).
    ``stock=False`` keeps the paretolm wrapper even where a stock class exists. Returns a summary
    (``arch_id``, ``model_class``, ``stock``, ``out``)."""
    model_dir, out = Path(model_dir), Path(out)
    model = load_model(model_dir)
    spec = model.config.arch_spec
    row = match_row(frontier, spec) if frontier is not None else None
    exported = to_stock(model, tokenizer) if stock else None
    if exported is not None:
        check_same_logits(model, exported, spec.vocab_size, spec.max_seq_len)
    target = exported if exported is not None else model
    from transformers import GenerationConfig

    ids = _token_ids(tokenizer)
    with atomic_dir(out) as tmp:
        target.save_pretrained(tmp, safe_serialization=True)
        (tmp / "spec.json").write_text(spec.to_json() + "\n")
        if ids["eos_token_id"] is not None:
            GenerationConfig(**ids, do_sample=False).save_pretrained(tmp)
        if tokenizer is not None:
            save_tokenizer(tokenizer, tmp, spec.max_seq_len)
        info = {
            "arch_id": spec.arch_id,
            "model_class": type(target).__name__,
            "stock": exported is not None,
            "model_type": target.config.model_type,
            "rank": rank,
            "rank_key": rank_key,
        }
        (tmp / "README.md").write_text(
            card(
                spec,
                info,
                row=row,
                frontier_prov=frontier_prov,
                evaluation=evaluation,
                eval_prov=eval_prov,
                training=_training_record(model_dir),
            )
        )
    return {**info, "out": str(out)}


def _training_record(model_dir: Path) -> dict[str, Any]:
    """What the training run beside ``model_dir`` recorded: its summary and its config part."""
    record: dict[str, Any] = {}
    summary = model_dir.parent / "train_summary.json"
    if summary.is_file():
        record["summary"] = json.loads(summary.read_text())
    log = model_dir.parent / "train_log.parquet"
    if log.is_file():
        prov = read_provenance(log) or {}
        record["config"] = prov.get("config", {})
        record["config_hash"] = prov.get("config_hash")
    return record


__all__ = [
    "RANK_KEY",
    "check_same_logits",
    "export_model",
    "find_tokenizer",
    "frontier_row",
    "match_row",
    "ranked",
    "stock_family",
    "to_gpt2",
    "to_llama",
    "to_opt",
    "to_stock",
    "trained_spec",
]

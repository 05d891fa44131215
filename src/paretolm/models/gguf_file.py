"""A ``llama`` model as a GGUF file, the format llama.cpp runs (the ``llamacpp`` runtime).

A homogeneous spec is written as llama.cpp's ``llama`` architecture; a heterogeneous one (per-layer
query heads, key/value heads and SwiGLU widths, as LTS's spaces have) as its ``deci`` architecture,
the layer-wise variant llama.cpp built for NAS-found Llama models, which reads the head counts and
feed-forward widths as per-layer arrays and runs the same graph. Both rotate *consecutive* pairs of
each head's features where Hugging Face's Llama rotates its halves, so the query and key rows are
permuted on the way (as llama.cpp's own converter does). Matrices are written as F32, F16, Q8_0 or
Q4_0 (``gguf.quants``; a matrix whose rows do not split into the type's blocks stays F16), norms as
F32. The vocabulary is a placeholder of ``vocab_size`` tokens: the runtime feeds token ids, never
text.
"""

from __future__ import annotations

import os
from typing import Any

import gguf
import numpy as np
import torch

from paretolm.core.arch import ArchSpec
from paretolm.core.backbones.llama import NORM_EPS

QUANT = {
    "float32": gguf.GGMLQuantizationType.F32,
    "float16": gguf.GGMLQuantizationType.F16,
    "q8_0": gguf.GGMLQuantizationType.Q8_0,
    "q4_0": gguf.GGMLQuantizationType.Q4_0,
}
FILE_TYPE = {
    "float32": gguf.LlamaFileType.ALL_F32,
    "float16": gguf.LlamaFileType.MOSTLY_F16,
    "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
    "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0,
}


def interleave_rotary(weight: np.ndarray, n_head: int) -> np.ndarray:
    """Rows of a query or key projection reordered from rotating halves of each head (Hugging
    Face) to rotating consecutive pairs (llama.cpp)."""
    return (
        weight.reshape(n_head, 2, weight.shape[0] // n_head // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def write_gguf(model: Any, path: str | os.PathLike, dtype: str = "float32") -> dict[str, Any]:
    """Write ``model`` (a paretolm ``LlamaLM``) to ``path`` with its matrices in ``dtype``
    (``float32``, ``float16``, ``q8_0``, ``q4_0``); returns the architecture written and the bytes
    of its tensors."""
    spec: ArchSpec = model.spec
    if spec.backbone != "llama":
        raise ValueError(f"backbone: GGUF files are written for llama specs, not {spec.backbone!r}")
    if dtype not in QUANT:
        raise ValueError(f"dtype: GGUF matrices are {', '.join(QUANT)}, not {dtype!r}")
    homogeneous = spec.plugin.homogeneous(spec)
    arch = "llama" if homogeneous else "deci"

    def per_layer(values: tuple[int, ...]) -> int | list[int]:
        return values[0] if homogeneous else list(values)

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_context_length(spec.max_seq_len)
    writer.add_embedding_length(spec.d_model)
    writer.add_block_count(spec.n_layer)
    writer.add_feed_forward_length(per_layer(spec.d_inner))
    writer.add_head_count(per_layer(spec.n_head))
    writer.add_head_count_kv(per_layer(spec.n_kv_head))
    writer.add_key_length(spec.head_dim)
    writer.add_value_length(spec.head_dim)
    writer.add_rope_dimension_count(spec.head_dim)
    writer.add_rope_freq_base(spec.rope_theta)
    writer.add_layer_norm_rms_eps(NORM_EPS)
    writer.add_vocab_size(spec.vocab_size)
    writer.add_file_type(FILE_TYPE[dtype])
    writer.add_tokenizer_model("llama")  # a placeholder vocabulary: the runtime feeds token ids
    writer.add_token_list([f"<{i}>".encode() for i in range(spec.vocab_size)])
    writer.add_token_scores([0.0] * spec.vocab_size)
    writer.add_token_types([int(gguf.TokenType.NORMAL)] * spec.vocab_size)
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(min(1, spec.vocab_size - 1))
    qtype, block = QUANT[dtype], gguf.GGML_QUANT_SIZES[QUANT[dtype]][0]
    written = 0

    def add(name: str, tensor: torch.Tensor | np.ndarray, matrix: bool = True) -> None:
        nonlocal written
        data = tensor.detach().float().numpy() if isinstance(tensor, torch.Tensor) else tensor.astype(np.float32)
        if not matrix or qtype == gguf.GGMLQuantizationType.F32:
            data = data.astype(np.float32)
            writer.add_tensor(name, data)
        elif qtype == gguf.GGMLQuantizationType.F16 or data.shape[-1] % block:
            data = data.astype(np.float16)
            writer.add_tensor(name, data)
        else:
            data = gguf.quants.quantize(data, qtype)
            writer.add_tensor(name, data, raw_shape=data.shape, raw_dtype=qtype)
        written += data.nbytes

    add("token_embd.weight", model.wte.weight)
    for i, layer in enumerate(model.layers):
        q, k, v = (t.numpy() for t in layer.attn.qkv.weight.detach().float().split(layer.attn.splits))
        p = f"blk.{i}."
        add(p + "attn_norm.weight", layer.ln_1.weight, matrix=False)
        add(p + "attn_q.weight", interleave_rotary(q, spec.n_head[i]))
        add(p + "attn_k.weight", interleave_rotary(k, spec.n_kv_head[i]))
        add(p + "attn_v.weight", v)
        add(p + "attn_output.weight", layer.attn.proj.weight)
        add(p + "ffn_norm.weight", layer.ln_2.weight, matrix=False)
        add(p + "ffn_gate.weight", layer.mlp.gate.weight)
        add(p + "ffn_up.weight", layer.mlp.fc.weight)
        add(p + "ffn_down.weight", layer.mlp.proj.weight)
    add("output_norm.weight", model.ln_f.weight, matrix=False)
    if not spec.tie_weights:
        add("output.weight", model.lm_head.weight)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {"architecture": arch, "tensor_bytes": written}


__all__ = ["QUANT", "interleave_rotary", "write_gguf"]

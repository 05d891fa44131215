"""Hugging Face wrapper: any paretolm backbone as a ``transformers`` causal LM (model type ``paretolm``).

``ParetoLMConfig`` carries the canonical spec dict and the dropout settings;
``ParetoLMForCausalLM`` builds the backbone with ``build_model`` and returns ``CausalLMOutput``
(``logits``; ``loss`` when ``labels`` are given, shifted inside as in ``transformers``). Importing
this module registers both with ``AutoConfig`` / ``AutoModelForCausalLM`` in-process, so
``save_pretrained`` (safetensors) and ``AutoModelForCausalLM.from_pretrained(folder)`` round-trip
without ``trust_remote_code``. Weight ties live inside the backbone (the LM head reads the
embedding's tensors), so every tensor is saved once and a reload keeps them tied.

An instance can be handed to lm-evaluation-harness: ``HFLM(pretrained=model, tokenizer=tok)``.
For adaptive-softmax backbones ``logits`` are log-probabilities; lm-eval's ``log_softmax`` leaves
them unchanged, so its log-likelihoods are the model's.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutput

from paretolm.core.arch import ArchSpec, spec_from_any
from paretolm.models import build_model


class ParetoLMConfig(PretrainedConfig):
    """Config of a paretolm model: ``spec`` (canonical spec dict) plus dropout settings."""

    model_type = "paretolm"

    spec: dict | None = None
    dropout: float = 0.0
    attn_dropout: float = 0.0
    vocab_size: int = 50257
    max_position_embeddings: int = 1024
    tie_word_embeddings: bool = False  # ties are the backbone's own business

    @classmethod
    def from_spec(
        cls, spec: ArchSpec | dict | str, dropout: float = 0.0, attn_dropout: float = 0.0, **kwargs: Any
    ) -> ParetoLMConfig:
        spec = spec_from_any(spec)
        return cls(
            spec=spec.to_dict(),
            dropout=dropout,
            attn_dropout=attn_dropout,
            vocab_size=spec.vocab_size,
            max_position_embeddings=spec.max_seq_len,
            **kwargs,
        )

    @property
    def arch_spec(self) -> ArchSpec:
        if not self.spec:
            raise ValueError("spec: a ParetoLMConfig needs an architecture spec")
        return ArchSpec.from_dict(self.spec)


class ParetoLMForCausalLM(PreTrainedModel, GenerationMixin):
    """A paretolm backbone behind the ``transformers`` causal-LM interface."""

    config_class = ParetoLMConfig
    base_model_prefix = "backbone"
    main_input_name = "input_ids"
    _supports_param_buffer_assignment = False

    def __init__(self, config: ParetoLMConfig):
        super().__init__(config)
        spec = config.arch_spec
        if not spec.plugin.causal:
            raise ValueError(f"backbone: {spec.backbone} is not a causal LM")
        self.backbone = build_model(spec, dropout=config.dropout, attn_dropout=config.attn_dropout)
        self.post_init()

    def _init_weights(self, module: torch.nn.Module) -> None:
        """The backbone initialises itself (GPT-2 scheme); nothing to add."""

    def get_input_embeddings(self) -> torch.nn.Module | None:
        return None

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> CausalLMOutput:
        """``attention_mask`` may only mark right padding (trailing zeros), which a causal model
        can ignore: positions before the padding never see it. Other keyword arguments that
        ``transformers``/lm-eval pass (``use_cache``, ``return_dict``, ...) are accepted and ignored."""
        if attention_mask is not None and not bool(attention_mask.all()):
            m = attention_mask.to(torch.int64)
            # right padding: non-increasing along the sequence (1...1 0...0)
            if bool((m[:, 1:] > m[:, :-1]).any()):
                raise ValueError("attention_mask: only right padding is supported (no left padding or holes)")
        out = self.backbone(input_ids, labels=labels)
        return CausalLMOutput(loss=out.loss, logits=out.logits)

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        """``generate`` must not build a ``DynamicCache``: it needs per-layer config fields the
        spec does not have, and each step runs the whole window (``prepare_inputs_for_generation``)."""
        return False

    def prepare_inputs_for_generation(self, input_ids: torch.Tensor, **kwargs: Any) -> dict[str, Any]:
        limit = self.config.max_position_embeddings
        return {"input_ids": input_ids[:, -limit:]}


def register_auto_classes() -> None:
    """Make ``AutoConfig`` / ``AutoModelForCausalLM`` know ``paretolm`` (idempotent)."""
    AutoConfig.register(ParetoLMConfig.model_type, ParetoLMConfig, exist_ok=True)
    AutoModelForCausalLM.register(ParetoLMConfig, ParetoLMForCausalLM, exist_ok=True)


def from_spec(spec: ArchSpec | dict | str, dropout: float = 0.0, attn_dropout: float = 0.0) -> ParetoLMForCausalLM:
    """A freshly initialised model for ``spec``."""
    return ParetoLMForCausalLM(ParetoLMConfig.from_spec(spec, dropout, attn_dropout))


register_auto_classes()

__all__ = ["ParetoLMConfig", "ParetoLMForCausalLM", "from_spec", "register_auto_classes"]

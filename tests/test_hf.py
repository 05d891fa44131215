"""The Hugging Face wrapper: save/load round trips and lm-evaluation-harness's HFLM on it."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import data_path
from safetensors import safe_open
from transformers import AutoConfig, AutoModelForCausalLM, GPT2TokenizerFast

from paretolm.models.hf import ParetoLMConfig, ParetoLMForCausalLM, from_spec

SPECS = {
    "gpt2_tied": {
        "backbone": "gpt2",
        "n_layer": 2,
        "d_model": 64,
        "n_head": [2, 4],
        "d_inner": [128, 256],
        "max_seq_len": 64,
    },
    "gpt2_adaptive": {
        "backbone": "gpt2",
        "n_layer": 2,
        "d_model": 64,
        "n_head": [2, 4],
        "d_inner": [128, 256],
        "max_seq_len": 64,
        "div_val": 2,
    },
    "opt": {"backbone": "opt", "n_layer": 1, "d_model": 64, "n_head": 4, "d_inner": 128, "max_seq_len": 64},
    "transformer_xl": {
        "backbone": "transformer_xl",
        "n_layer": 2,
        "d_model": 64,
        "n_head": [2, 4],
        "d_inner": [128, 256],
        "div_val": 4,
        "mem_len": 16,
    },
    "merino_tied": {
        "backbone": "merino",
        "blocks": [{"d_model": 64, "ffn_ratio": 2.0, "n_layer": 2}, {"d_model": 128, "ffn_ratio": 1.5, "n_layer": 1}],
        "max_seq_len": 64,
    },
    "merino_untied": {
        "backbone": "merino",
        "blocks": [{"d_model": 64, "ffn_ratio": 2.0, "n_layer": 1}],
        "max_seq_len": 64,
        "tie_weights": False,
    },
    "par": {"backbone": "par", "layers": "(sff)x2 i", "d_model": 64, "n_head": 4, "d_inner": 128, "max_seq_len": 64},
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_save_and_load_round_trip(name, tmp_path):
    torch.manual_seed(0)
    model = from_spec(SPECS[name], dropout=0.1, attn_dropout=0.05).eval()
    x = torch.randint(0, 50257, (2, 12))
    before = model(x, labels=x)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "paretolm" and config["spec"]["backbone"] == SPECS[name]["backbone"]
    assert config["dropout"] == 0.1 and config["attn_dropout"] == 0.05
    assert isinstance(AutoConfig.from_pretrained(tmp_path), ParetoLMConfig)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, ParetoLMForCausalLM)
    after = loaded(x, labels=x)
    assert torch.equal(before.logits, after.logits)
    assert torch.allclose(before.loss, after.loss)
    assert sum(p.numel() for p in loaded.parameters()) == sum(p.numel() for p in model.parameters())


def test_tied_weights_survive_reload(tmp_path):
    model = from_spec(SPECS["gpt2_adaptive"])
    model.save_pretrained(tmp_path)
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert "backbone.wte.emb_layers.0.weight" in keys
    assert not any("out_weights" in k or "out_projs" in k for k in keys)  # saved once, in the embedding
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    head, emb = loaded.backbone.head, loaded.backbone.wte
    assert head._tied is emb
    # training the embedding moves the output layer with it
    with torch.no_grad():
        emb.emb_layers[0].weight.add_(1.0)
    assert torch.equal(head._weight(0), emb.emb_layers[0].weight)


def test_attention_mask_right_padding_only():
    model = from_spec(SPECS["gpt2_tied"]).eval()
    x = torch.randint(0, 50257, (2, 6))
    right = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    assert torch.equal(model(x, attention_mask=right).logits, model(x).logits)
    with pytest.raises(ValueError, match="attention_mask"):
        model(x, attention_mask=torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]]))


def test_bad_config_names_the_field():
    with pytest.raises(ValueError, match="spec"):
        ParetoLMForCausalLM(ParetoLMConfig())
    with pytest.raises(ValueError, match="n_head"):
        from_spec({"backbone": "gpt2", "n_layer": 1, "d_model": 64, "n_head": 3, "d_inner": 128})


@pytest.fixture(scope="module")
def tokenizer():
    tok = GPT2TokenizerFast.from_pretrained(str(data_path("tokenizers/gpt2/vocab.json").parent))
    assert tok("Hello world").input_ids == [15496, 995]
    return tok


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gpt2_adaptive", "transformer_xl"])
def test_lm_eval_hflm_loglikelihood(name, tokenizer):
    """lm-eval's HFLM takes the instance; its log-likelihoods are the model's own."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    torch.manual_seed(0)
    model = from_spec(SPECS[name]).eval()
    lm = HFLM(pretrained=model, tokenizer=tokenizer, backend="causal", batch_size=2, max_length=64)
    pairs = [("The cat sat on the", " mat"), ("Hello", " world"), ("One two three", " four five")]
    requests = [Instance(request_type="loglikelihood", doc={}, arguments=p, idx=i) for i, p in enumerate(pairs)]
    results = lm.loglikelihood(requests)
    assert len(results) == 3
    for (context, continuation), (ll, greedy) in zip(pairs, results, strict=True):
        ctx = tokenizer(context).input_ids
        cont = tokenizer(continuation).input_ids
        ids = torch.tensor([ctx + cont])
        with torch.no_grad():
            logp = model(ids).logits.log_softmax(-1)[0]
        expect = sum(logp[len(ctx) - 1 + i, t].item() for i, t in enumerate(cont))
        assert ll == pytest.approx(expect, abs=1e-4)
        assert isinstance(greedy, bool)
        # an untrained model is near uniform over 50,257 tokens
        assert ll == pytest.approx(-len(cont) * math.log(50257), rel=0.1)

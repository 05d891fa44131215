"""Perplexity windows, agreement with lm-eval on real weights (stories260K), lm-eval task YAMLs."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import DATA, data_path, needs_data

from paretolm.validation import evaluation as E

ZS = DATA / "zero-shot"


class Bigram(nn.Module):
    """Logits depend on the current token only, so any window gives the same per-token loss."""

    def __init__(self, vocab: int = 11):
        super().__init__()
        torch.manual_seed(0)
        self.table = nn.Embedding(vocab, vocab)

    def forward(self, x):
        return (self.table(x),)


def test_uniform_model_has_perplexity_vocab_size():
    class Uniform(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return (torch.zeros(*x.shape, 7) + self.w,)

    nll, n = E.score_stream(Uniform(), np.arange(50) % 7, seq_len=8, prefix_token=0)
    assert n == 50 and math.exp(nll / n) == pytest.approx(7.0)


@pytest.mark.parametrize("seq_len,stride", [(8, None), (8, 8), (8, 3), (8, 1), (64, None), (5, 4)])
def test_windows_score_every_token_once(seq_len, stride):
    model = Bigram()
    ids = torch.randint(0, 11, (37,), generator=torch.Generator().manual_seed(1))
    stream = torch.cat([torch.tensor([3]), ids])
    direct = -F.log_softmax(model.table(stream[:-1]), -1).gather(-1, stream[1:, None]).sum().item()
    nll, n = E.score_stream(model, ids, seq_len, stride=stride, prefix_token=3, batch_size=3)
    assert n == 37 and nll == pytest.approx(direct, rel=1e-5)


def test_bad_window_arguments():
    with pytest.raises(ValueError, match="stride"):
        E.score_stream(Bigram(), [1, 2, 3], seq_len=4, stride=5)
    with pytest.raises(ValueError, match="seq_len"):
        E.score_stream(Bigram(), [1, 2, 3], seq_len=0)


def test_strided_context_lowers_loss_of_a_real_model():
    stories, tok = _stories()
    text = data_path("corpora/tinyshakespeare/input.txt").read_text()[:3000]
    ids = tok(text, add_special_tokens=False)["input_ids"]
    flat, _ = E.score_stream(stories, ids, 32, prefix_token=tok.bos_token_id)
    strided, _ = E.score_stream(stories, ids, 32, stride=8, prefix_token=tok.bos_token_id)
    assert strided < flat


def _stories():
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    stories = data_path("models/stories260K-hf")
    model = AutoModelForCausalLM.from_pretrained(stories)
    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(stories / "tokenizer.json"), bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    return model, tok


@needs_data(
    "models/stories260K-hf",
    "zero-shot",
    "corpora/wikitext-2/wikitext2_valid_docs.jsonl",
    "corpora/tinyshakespeare/input.txt",
)
@pytest.mark.parametrize("seq_len", [96])
def test_stories260k_perplexity_agrees_with_lm_eval(tmp_path, seq_len):
    model, tok = _stories()
    docs = [
        json.loads(line)["page"][:4000] for line in (DATA / "corpora/wikitext-2/wikitext2_valid_docs.jsonl").open()
    ][:2]
    docs.append((DATA / "corpora/tinyshakespeare/input.txt").read_text()[:4000])
    mine = E.docs_perplexity(model, tok, docs, seq_len=seq_len)
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text("".join(json.dumps({"page": d}) + "\n" for d in docs))
    names = E.write_tasks(tmp_path / "tasks", ZS, [], extra={"docs": (jsonl, "rolling")})
    lm = E.lm_eval_model(model, tok, batch_size=4, max_length=seq_len)
    theirs = E.run_lm_eval(lm, tmp_path / "tasks", names, limit=None)["paretolm_docs"]
    assert mine["byte_ppl"] == pytest.approx(theirs["byte_perplexity,none"], rel=0.01)
    assert mine["word_ppl"] == pytest.approx(theirs["word_perplexity,none"], rel=0.01)
    assert 1 < mine["ppl"] < 512  # better than uniform over the 512-token vocabulary


def _loglik(model, tok, context: str, continuation: str) -> float:
    """Log-likelihood of continuation after context, split as lm-eval splits the pair."""
    whole = tok(context + continuation, add_special_tokens=False)["input_ids"]
    ctx = tok(context, add_special_tokens=False)["input_ids"]
    cont = whole[len(ctx) :]
    x = torch.tensor([whole[:-1]])
    with torch.no_grad():
        logp = F.log_softmax(model(x).logits.float(), -1)[0]
    return float(sum(logp[len(ctx) - 1 + i, t] for i, t in enumerate(cont)))


@needs_data("models/stories260K-hf", "zero-shot")
def test_zero_shot_items_match_hand_scoring():
    model, tok = _stories()
    table = E.zero_shot(model, tok, ["copa", "winogrande", "lambada_openai"], ZS, limit=6, batch_size=4)
    by = {(r.task, r.metric): r.value for r in table.itertuples()}
    rows = [json.loads(line) for line in (ZS / "copa.jsonl").open()][:6]
    hits = [int(np.argmax([_loglik(model, tok, r["query"], " " + c) for c in r["choices"]])) == r["gold"] for r in rows]
    assert by[("copa", "acc")] == pytest.approx(np.mean(hits))
    wrows = [json.loads(line) for line in (ZS / "winogrande.jsonl").open()][:6]
    whits = [
        int(np.argmax([_loglik(model, tok, c, " " + r["continuation"]) for c in r["context_options"]])) == r["gold"]
        for r in wrows
    ]
    assert by[("winogrande", "acc")] == pytest.approx(np.mean(whits))
    assert 0 <= by[("lambada_openai", "acc")] <= 1 and by[("lambada_openai", "perplexity")] > 1
    assert 0 <= E.mean_accuracy(table) <= 1


def test_write_tasks_rejects_unknown_set(tmp_path):
    with pytest.raises(ValueError, match="unknown set 'mmlu'"):
        E.write_tasks(tmp_path, ZS, ["mmlu"])


# -- Transformer-XL: the memory carried across segments -------------------------------------------
TXL = {
    "backbone": "transformer_xl",
    "n_layer": 2,
    "d_model": 32,
    "n_head": [2, 4],
    "d_inner": [48, 64],
    "div_val": 2,
    "vocab_size": 300,
    "cutoffs": [100, 200],
    "max_seq_len": 64,
}


def _txl(mem_len: int, pre_lnorm: bool = False):
    """A tiny Transformer-XL (the HF wrapper) with large random weights: at the GPT-2 init the
    logits are near uniform and context would barely move the loss."""
    from paretolm.core.arch import ArchSpec
    from paretolm.models import hf

    torch.manual_seed(0)
    model = hf.from_spec(ArchSpec.from_dict(dict(TXL, mem_len=mem_len, pre_lnorm=pre_lnorm))).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(
                torch.randn_like(p) * (0.3 if p.dim() >= 2 else 0.5)
                + (1.0 if name.endswith("layer_norm.weight") else 0.0)
            )
    return model


def _stream(n: int = 70, prefix: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(0, 300, (n,), generator=torch.Generator().manual_seed(0))
    return ids, torch.cat([torch.tensor([prefix]), ids])


def _segments_by_hand(backbone, stream: torch.Tensor, seq_len: int) -> float:
    """Transformer-XL's evaluation loop: consecutive segments, each given the previous mems."""
    total, mems = 0.0, None
    with torch.no_grad():
        for k in range(0, stream.numel() - 1, seq_len):
            seg = stream[k : k + seq_len + 1]
            out = backbone(seg[None, :-1], mems=mems)
            total -= float(F.log_softmax(out.logits.float(), -1)[0].gather(-1, seg[1:, None]).sum())
            mems = out.mems
    return total


def test_transformer_xl_perplexity_carries_memory_across_segments():
    model = _txl(mem_len=16)
    assert E.memory_module(model) is model.backbone and E.memory_module(Bigram()) is None
    ids, stream = _stream()
    with_memory, n = E.score_stream(model, ids, 16, prefix_token=1)
    windowed, n_windowed = E.score_stream(model, ids, 16, prefix_token=1, memory=False)
    assert n == n_windowed == 70
    assert with_memory == pytest.approx(_segments_by_hand(model.backbone, stream, 16), rel=1e-6)
    assert abs(with_memory - windowed) > 1.0  # the memory is real context, not rounding

    split = SimpleNamespace(ids=ids.numpy(), n_words=35, n_bytes=140)  # a TokenizedSplit's fields
    assert E.split_perplexity(model, split, 16, prefix_token=1)["nll"] == pytest.approx(with_memory)
    assert E.split_perplexity(model, split, 16, None, 1, 8, None, False)["nll"] == pytest.approx(windowed)
    # strided windows never use the memory; asking for it with them, or of a model without one, fails
    strided, _ = E.score_stream(model, ids, 16, stride=4, prefix_token=1)
    assert strided == pytest.approx(E.score_stream(model, ids, 16, stride=4, prefix_token=1, memory=False)[0])
    with pytest.raises(ValueError, match="memory"):
        E.score_stream(model, ids, 16, stride=4, memory=True)
    with pytest.raises(ValueError, match="memory"):
        E.score_stream(Bigram(), [1, 2, 3], 2, memory=True)
    # mem_len 0 keeps no memory: the windows as before
    no_mem = _txl(mem_len=0)
    assert E.memory_module(no_mem) is None
    assert E.score_stream(no_mem, ids, 16, prefix_token=1)[0] == pytest.approx(
        E.score_stream(no_mem, ids, 16, prefix_token=1, memory=False)[0]
    )


@pytest.mark.parametrize("pre_lnorm", [False, True])
def test_transformer_xl_long_memory_equals_the_whole_stream_at_once(pre_lnorm):
    """Attention over the memory is exact: the memory holds each layer's input states, computed
    with all earlier tokens in view, and relative positions continue across segments, so with
    mem_len >= the stream, segment by segment is one forward over the whole stream."""
    model = _txl(mem_len=256, pre_lnorm=pre_lnorm)
    ids, stream = _stream()
    segmented, _ = E.score_stream(model, ids, 16, prefix_token=1)
    with torch.no_grad():
        logp = F.log_softmax(model.backbone(stream[None, :-1]).logits.float(), -1)[0]
    whole = -float(logp.gather(-1, stream[1:, None]).sum())
    assert segmented == pytest.approx(whole, rel=1e-5)
    assert abs(segmented - E.score_stream(model, ids, 16, prefix_token=1, memory=False)[0]) > 1.0


# -- lm-eval requests longer than the model's context ---------------------------------------------
def test_left_truncate_keeps_the_last_tokens_as_lm_eval():
    ctx, cont = list(range(10)), [10, 11, 12]
    assert E.left_truncate(ctx, cont, 4) == (ctx, cont)  # HFLM cuts the context itself
    assert E.left_truncate([0, 1], list(range(2, 12)), 4) == ([7], [8, 9, 10, 11])
    window = ([0, 1] + list(range(2, 12)))[-(4 + 1) :]
    assert E.left_truncate([0, 1], list(range(2, 12)), 4) == (window[:1], window[1:])


@needs_data("tokenizers/gpt2")
def test_lm_eval_requests_longer_than_the_context_are_cut_from_the_left():
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from paretolm.core.arch import ArchSpec
    from paretolm.data import TokenizerSpec, load_tokenizer
    from paretolm.models import hf

    tok = load_tokenizer(TokenizerSpec.from_config("gpt2", {"type": "gpt2", "path": str(DATA / "tokenizers/gpt2")}))
    context = 8
    torch.manual_seed(0)
    model = hf.from_spec(
        ArchSpec.from_dict(
            dict(backbone="gpt2", n_layer=1, d_model=16, n_head=[2], d_inner=[32], div_val=1, max_seq_len=context)
        )
    ).eval()
    seen: list[int] = []
    model.backbone.register_forward_pre_hook(lambda mod, args: seen.append(args[0].size(1)))
    pairs = [
        ("In the beginning God created the heaven and the earth, and the earth was", " without form"),
        ("And God said", " Let there be light: and there was light, and God saw the light, that it was good"),
        ("Amen", " so"),
    ]
    lm = E.lm_eval_model(model, tok, batch_size=2, max_length=1024)  # more than the model takes
    assert lm.max_length == context
    got = lm.loglikelihood([Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)])
    assert seen and max(seen) <= context
    for (ctx_text, cont_text), (ll, _) in zip(pairs, got, strict=True):
        whole = tok(ctx_text + cont_text, add_special_tokens=False)["input_ids"]
        n_ctx = len(tok(ctx_text, add_special_tokens=False)["input_ids"])
        window = whole[-(context + 1) :]  # lm-eval's cut: the model reads window[:-1]
        k = min(len(whole) - n_ctx, context)  # continuation tokens left in the window
        with torch.no_grad():
            logp = F.log_softmax(model(torch.tensor([window[:-1]])).logits.float(), -1)[0]
        hand = sum(float(logp[len(window) - 1 - k + i, window[len(window) - k + i]]) for i in range(k))
        assert ll == pytest.approx(hand, abs=1e-4)
    assert len(tok(pairs[1][1], add_special_tokens=False)["input_ids"]) > context  # the long continuation
    # stock HFLM refuses both: a length beyond the positions, a continuation beyond its max_length
    with pytest.raises(ValueError, match="exceed max_seq_len"):
        HFLM(
            pretrained=model, tokenizer=tok, batch_size=2, max_length=1024, add_bos_token=False, device="cpu"
        ).loglikelihood([Instance("loglikelihood", {}, pairs[0], 0)])
    with pytest.raises(AssertionError):
        HFLM(pretrained=model, tokenizer=tok, batch_size=2, add_bos_token=False, device="cpu").loglikelihood(
            [Instance("loglikelihood", {}, pairs[1], 0)]
        )

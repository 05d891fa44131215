"""Perplexity windows, agreement with lm-eval on real weights (stories260K), lm-eval task YAMLs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import DATA, data_path, needs_data

from paretolm import evaluation as E

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
    tok = PreTrainedTokenizerFast(tokenizer_file=str(stories / "tokenizer.json"), bos_token="<s>",
                                  eos_token="</s>", unk_token="<unk>")
    return model, tok


@needs_data("models/stories260K-hf", "zero-shot", "corpora/wikitext-2/wikitext2_valid_docs.jsonl",
            "corpora/tinyshakespeare/input.txt")
@pytest.mark.parametrize("seq_len", [96])
def test_stories260k_perplexity_agrees_with_lm_eval(tmp_path, seq_len):
    model, tok = _stories()
    docs = [json.loads(line)["page"][:4000]
            for line in (DATA / "corpora/wikitext-2/wikitext2_valid_docs.jsonl").open()][:2]
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
    cont = whole[len(ctx):]
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
    hits = [int(np.argmax([_loglik(model, tok, r["query"], " " + c) for c in r["choices"]])) == r["gold"]
            for r in rows]
    assert by[("copa", "acc")] == pytest.approx(np.mean(hits))
    wrows = [json.loads(line) for line in (ZS / "winogrande.jsonl").open()][:6]
    whits = [int(np.argmax([_loglik(model, tok, c, " " + r["continuation"]) for c in r["context_options"]]))
             == r["gold"] for r in wrows]
    assert by[("winogrande", "acc")] == pytest.approx(np.mean(whits))
    assert 0 <= by[("lambada_openai", "acc")] <= 1 and by[("lambada_openai", "perplexity")] > 1
    assert 0 <= E.mean_accuracy(table) <= 1


def test_write_tasks_rejects_unknown_set(tmp_path):
    with pytest.raises(ValueError, match="unknown set 'mmlu'"):
        E.write_tasks(tmp_path, ZS, ["mmlu"])

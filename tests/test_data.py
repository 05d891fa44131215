"""Datasets, tokenizers, cached token arrays and load_batch on the real offline corpora."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DATA, needs_data

from paretolm import data

KJV = str(DATA / "corpora/kjv/kjv_verses.txt")
SHAKES = str(DATA / "corpora/tinyshakespeare/input.txt")
WT2 = DATA / "corpora/wikitext-2"
GPT2 = DATA / "tokenizers/gpt2"
pytestmark = needs_data(KJV, SHAKES, WT2, GPT2)


def _cfg(tmp_path: Path, **over) -> dict:
    cfg = {
        "datasets": {
            "kjv": {"files": KJV, "split": {"train": 0.9, "validation": 0.05, "test": 0.05}},
            "shakespeare": {"files": SHAKES, "split": {"train": 0.9, "validation": 0.1}},
            "wt2": {"files": {"validation": str(WT2 / "valid.txt"), "test": str(WT2 / "test.txt")}},
        },
        "tokenizers": {
            "gpt2": {"type": "gpt2", "path": str(GPT2)},
            "sh_bpe": {"type": "bpe", "vocab_size": 512, "train_on": "shakespeare"},
            "sh_word": {"type": "word", "vocab_size": 2000, "train_on": "shakespeare"},
        },
        "dataset": "shakespeare",
        "tokenizer": "gpt2",
        "cache_dir": str(tmp_path / "cache"),
    }
    cfg.update(over)
    return cfg


def test_gpt2_tokenizer_gives_canonical_ids(tmp_path):
    tok = data.data_config(_cfg(tmp_path)).load_tokenizer()
    assert tok("Hello world")["input_ids"] == [15496, 995]
    assert len(tok) == 50257 and tok.eos_token_id == 50256


def test_single_file_split_by_line_order_covers_file(tmp_path):
    spec = data.DatasetSpec.from_config("kjv", _cfg(tmp_path)["datasets"]["kjv"])
    parts = [data.split_text(spec, s) for s in ("train", "validation", "test")]
    assert sum(map(len, parts)) == 31102
    assert parts[0][0].startswith("Ge1:1 In the beginning")
    assert parts[2][-1].startswith("Rev22:21")
    assert "".join("".join(p) for p in parts) == Path(KJV).read_text()
    assert abs(len(parts[1]) - 0.05 * 31102) <= 1


def test_tokenized_split_is_memory_mapped_and_decodes_back(tmp_path):
    dc = data.data_config(_cfg(tmp_path))
    s = dc.split("validation")
    assert isinstance(s.ids, np.memmap) and s.ids.dtype == np.uint16
    text = "".join(data.split_text(dc.dataset, "validation"))
    assert (
        dc.load_tokenizer().decode(np.asarray(s.ids[:2000]).tolist())
        == text[: len(dc.load_tokenizer().decode(np.asarray(s.ids[:2000]).tolist()))]
    )
    assert s.n_bytes == len(text.encode()) and s.n_words == len(text.split())
    mtime = s.path.stat().st_mtime_ns
    assert dc.split("validation").path.stat().st_mtime_ns == mtime  # cached, not rewritten
    assert not list(s.path.parent.glob(".*.tmp"))


@pytest.mark.parametrize("name,vocab", [("sh_bpe", 512), ("sh_word", 2000)])
def test_trained_tokenizers_are_cached(tmp_path, name, vocab):
    dc = data.data_config(_cfg(tmp_path, tokenizer=name))
    tok = dc.load_tokenizer()
    assert len(tok) == vocab
    files = list((tmp_path / "cache" / "tokenizers").glob(f"{name}-*.json"))
    assert len(files) == 1
    ids = dc.split("validation").ids
    assert int(ids.max()) < vocab
    if name == "sh_word":
        assert (np.asarray(ids) == tok.eos_token_id).sum() > 1000  # one <eos> per non-empty line
        assert tok("KING RICHARD")["input_ids"][0] != tok.unk_token_id


def test_load_batch_deterministic_and_in_range(tmp_path):
    cfg = _cfg(tmp_path)
    a = data.load_batch(cfg, 4, 32, seed=1)
    assert a.dtype == torch.long and a.shape == (4, 32)
    assert torch.equal(a, data.load_batch(cfg, 4, 32, seed=1))
    assert not torch.equal(a, data.load_batch(cfg, 4, 32, seed=2))
    ids = data.data_config(cfg).split("train").ids
    row = a[0].numpy()
    # each row is a contiguous window of the train split
    starts = np.flatnonzero(np.asarray(ids[:-32]) == row[0])
    assert any(np.array_equal(np.asarray(ids[s : s + 32]), row) for s in starts)


def test_train_batch_depends_on_step_only(tmp_path):
    ids = data.data_config(_cfg(tmp_path)).split("train").ids
    assert torch.equal(data.train_batch(ids, 7, 2, 16, 0), data.train_batch(ids, 7, 2, 16, 0))
    assert not torch.equal(data.train_batch(ids, 7, 2, 16, 0), data.train_batch(ids, 8, 2, 16, 0))


def test_paths_relative_to_root_and_env(tmp_path, monkeypatch):
    monkeypatch.setenv("PARETOLM_DATA", str(DATA))
    assert data.resolve_path("$PARETOLM_DATA/corpora/kjv/kjv_verses.txt") == Path(KJV)
    monkeypatch.delenv("PARETOLM_DATA")
    assert data.resolve_path("$PARETOLM_DATA/x", root="/r") == Path("/r/../shared/data/x")
    assert data.resolve_path("a/b", root="/r") == Path("/r/a/b")


@pytest.mark.parametrize(
    "entry,field",
    [
        ({"files": KJV}, "datasets.d.split"),
        ({"files": KJV, "hf": {"name": "x"}}, "datasets.d"),
        ({"files": KJV, "split": {"train": 0.5, "validation": 0.4}}, "datasets.d.split"),
        ({"files": {"dev": KJV}}, "datasets.d.files.dev"),
        ({"hf": {"config": "x"}}, "datasets.d.hf"),
        ({"files": KJV, "split": {"train": 1.0}, "colour": 1}, "datasets.d.colour"),
    ],
)
def test_bad_dataset_entries_name_the_field(entry, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        data.DatasetSpec.from_config("d", entry)


def test_bad_tokenizer_and_data_block(tmp_path):
    with pytest.raises(ValueError, match=r"tokenizers\.t\.type"):
        data.TokenizerSpec.from_config("t", {"type": "sentencepiece"})
    with pytest.raises(ValueError, match=r"tokenizers\.t\.vocab_size"):
        data.TokenizerSpec.from_config("t", {"type": "bpe", "vocab_size": 3, "train_on": "kjv"})
    with pytest.raises(ValueError, match=r"data\.dataset"):
        data.data_config(_cfg(tmp_path, dataset="nope"))
    with pytest.raises(ValueError, match="seq_len"):
        data.load_batch(_cfg(tmp_path, dataset="wt2", split="test"), 1, 10**7, 0)
    with pytest.raises(ValueError, match="split"):
        data.load_batch(_cfg(tmp_path, dataset="wt2", split="train"), 1, 8, 0)

"""Datasets, tokenizers and tokenized splits for training, evaluation and data-dependent proxies.

A dataset is described in config by one of two forms, both read through the ``datasets`` library so
the rest of the code sees one ``Dataset`` with a ``text`` column per split:

* a Hugging Face hub dataset (the path users with internet take, e.g. WikiText-103 or LM1B)::

      wikitext103: {hf: {name: wikitext, config: wikitext-103-raw-v1}, text_column: text}

* local text files, one per split, or one file cut into splits by line order::

      wikitext2: {files: {validation: ../shared/data/corpora/wikitext-2/valid.txt,
                          test: ../shared/data/corpora/wikitext-2/test.txt}}
      kjv: {files: ../shared/data/corpora/kjv/kjv_verses.txt,
            split: {train: 0.9, validation: 0.05, test: 0.05}}

A tokenizer is either the GPT-2 byte-level BPE read from local ``vocab.json``/``merges.txt``
(``{type: gpt2, path: ../shared/data/tokenizers/gpt2}``) or one trained with ``tokenizers`` on a
dataset's train split (``{type: bpe | word, vocab_size: 8192, train_on: kjv}``), cached as a JSON
artifact keyed by its spec. Tokenized splits are cached as ``.npy`` files (uint16 when the
vocabulary fits) opened memory-mapped, next to a JSON record of the split's word and byte counts
that word-level perplexity needs. Every cached file is written atomically.

Token batches are cut in one place, ``random_windows`` (seeded random windows of an id array):
``train_batch`` for training steps, ``load_batch`` / ``text_batch`` / ``file_batch`` for the one
batch of data-dependent proxies (from a data block, a plain text file, or a file that is either),
and ``batch_stream`` for an endless stream (PAR's search).

Relative paths are resolved against ``root`` (the repository root, by default the working
directory); a leading ``$PARETOLM_DATA`` expands to that environment variable, or
``../shared/data`` when it is unset.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml
from tokenizers import ByteLevelBPETokenizer, Tokenizer, decoders, models, pre_tokenizers, trainers

from paretolm.core import lazy
from paretolm.core.artifacts import atomic_path, canonical_hash, file_hash

if TYPE_CHECKING:
    import torch
else:  # torch is imported on first use: reading this module (the config check, the CLI, the plugin
    # registries) does not load it
    torch = lazy.module("torch")


DEFAULT_CACHE = "results/cache/data"
DATA_ENV = "PARETOLM_DATA"
DEFAULT_DATA = "../shared/data"
SPLITS = ("train", "validation", "test")
_WORD = re.compile(r"\s+")


def resolve_path(path: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """A config path as a filesystem path: ``$PARETOLM_DATA`` expanded, relative to ``root``."""
    text = str(path)
    if text.startswith("$" + DATA_ENV) or text.startswith("${" + DATA_ENV + "}"):
        rest = text.split("}", 1)[1] if text.startswith("${") else text[len(DATA_ENV) + 1 :]
        text = os.environ.get(DATA_ENV, DEFAULT_DATA) + rest
    p = Path(text)
    if not p.is_absolute():
        p = Path(root or os.getcwd()) / p
    return p


# -- datasets -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DatasetSpec:
    """One dataset entry of the config, validated."""

    name: str
    hf: Mapping[str, Any] | None
    files: Mapping[str, str] | str | None
    split: Mapping[str, float] | None
    text_column: str

    @classmethod
    def from_config(cls, name: str, cfg: Mapping[str, Any]) -> DatasetSpec:
        if not isinstance(cfg, Mapping):
            raise ValueError(f"datasets.{name}: expected a mapping, got {cfg!r}")
        unknown = set(cfg) - {"hf", "files", "split", "text_column"}
        if unknown:
            raise ValueError(f"datasets.{name}.{sorted(unknown)[0]}: unknown key")
        hf, files, split = cfg.get("hf"), cfg.get("files"), cfg.get("split")
        if (hf is None) == (files is None):
            raise ValueError(f"datasets.{name}: give exactly one of 'hf' (hub dataset) or 'files' (local text)")
        if hf is not None and (not isinstance(hf, Mapping) or "name" not in hf):
            raise ValueError(f"datasets.{name}.hf: needs at least a 'name'")
        if files is not None:
            if isinstance(files, Mapping):
                bad = set(files) - set(SPLITS)
                if bad:
                    raise ValueError(f"datasets.{name}.files.{sorted(bad)[0]}: unknown split (use {SPLITS})")
                if split is not None:
                    raise ValueError(f"datasets.{name}.split: only for a single file, not per-split files")
            elif not isinstance(files, str):
                raise ValueError(f"datasets.{name}.files: expected a path or a mapping split -> path")
            elif split is None:
                raise ValueError(
                    f"datasets.{name}.split: a single file needs fractions, e.g. {{train: 0.9, validation: 0.1}}"
                )
        if split is not None:
            if not isinstance(split, Mapping) or set(split) - set(SPLITS) or not split:
                raise ValueError(f"datasets.{name}.split: expected fractions keyed by {SPLITS}")
            fracs = [float(v) for v in split.values()]
            if any(f <= 0 for f in fracs) or abs(sum(fracs) - 1.0) > 1e-6:
                raise ValueError(f"datasets.{name}.split: fractions must be positive and sum to 1, got {dict(split)}")
        return cls(name=name, hf=hf, files=files, split=split, text_column=str(cfg.get("text_column", "text")))

    def to_dict(self) -> dict[str, Any]:
        return {"hf": self.hf, "files": self.files, "split": self.split, "text_column": self.text_column}

    def splits(self) -> tuple[str, ...]:
        if self.split is not None:
            return tuple(s for s in SPLITS if s in self.split)
        if isinstance(self.files, Mapping):
            return tuple(s for s in SPLITS if s in self.files)
        return tuple(self.hf.get("splits", SPLITS))  # type: ignore[union-attr]


def check_text_file(path: Path, where: str) -> None:
    """A local dataset file must exist, hold text (UTF-8, no NUL bytes) and not be empty: say
    which dataset and file otherwise, before ``datasets`` fails somewhere inside."""
    if not path.is_file():
        raise FileNotFoundError(f"{where}: no file at {path}")
    with open(path, "rb") as fh:
        head = fh.read(1 << 20)
    if not head.strip():
        raise ValueError(f"{where}: {path} is empty")
    if b"\x00" in head:
        raise ValueError(f"{where}: {path} is not a text file (it holds NUL bytes)")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # a multi-byte character cut at the end of the sample is fine
            raise ValueError(f"{where}: {path} is not UTF-8 text (byte {e.start}: {e.reason})") from None


def load_split(spec: DatasetSpec, split: str, root: str | os.PathLike | None = None):
    """The ``datasets.Dataset`` of one split, with the text in ``spec.text_column``.

    Local files go through the ``text`` builder with line breaks kept, so concatenating the rows
    gives back the file; a single file is cut by line order (first lines train, then validation,
    then test), which keeps verses or paragraphs of one passage together.
    """
    import datasets

    if split not in spec.splits():
        raise ValueError(f"split: dataset {spec.name!r} has no split {split!r} (has {spec.splits()})")
    if spec.hf is not None:
        hf = dict(spec.hf)
        hub_split = hf.get("split_names", {}).get(split, split)
        return datasets.load_dataset(hf["name"], hf.get("config"), split=hub_split)
    if isinstance(spec.files, Mapping):
        path = resolve_path(spec.files[split], root)
        check_text_file(path, f"datasets.{spec.name}.files.{split}")
        return datasets.load_dataset("text", data_files={split: str(path)}, split=split, keep_linebreaks=True)
    path = resolve_path(spec.files, root)  # type: ignore[arg-type]
    check_text_file(path, f"datasets.{spec.name}.files")
    full = datasets.load_dataset("text", data_files={"full": str(path)}, split="full", keep_linebreaks=True)
    n = len(full)
    start = 0
    order = [s for s in SPLITS if s in spec.split]  # type: ignore[operator]
    for i, s in enumerate(order):
        stop = n if i == len(order) - 1 else start + int(round(n * float(spec.split[s])))  # type: ignore[index]
        if s == split:
            if stop <= start:
                raise ValueError(
                    f"datasets.{spec.name}.split.{split}: {path} has {n} lines, too few for a non-empty {split} split"
                )
            return full.select(range(start, stop))
        start = stop
    raise AssertionError("unreachable")


def split_text(spec: DatasetSpec, split: str, root: str | os.PathLike | None = None) -> list[str]:
    """The rows of one split as strings."""
    return list(load_split(spec, split, root)[spec.text_column])


# -- tokenizers -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TokenizerSpec:
    name: str
    type: str
    path: str | None = None
    vocab_size: int | None = None
    train_on: str | None = None
    min_frequency: int = 2

    @classmethod
    def from_config(cls, name: str, cfg: Mapping[str, Any]) -> TokenizerSpec:
        if not isinstance(cfg, Mapping):
            raise ValueError(f"tokenizers.{name}: expected a mapping, got {cfg!r}")
        unknown = set(cfg) - {"type", "path", "vocab_size", "train_on", "min_frequency"}
        if unknown:
            raise ValueError(f"tokenizers.{name}.{sorted(unknown)[0]}: unknown key")
        kind = cfg.get("type")
        if kind == "gpt2":
            if not cfg.get("path"):
                raise ValueError(f"tokenizers.{name}.path: the gpt2 tokenizer needs the folder of vocab.json")
        elif kind in ("bpe", "word"):
            vs = cfg.get("vocab_size")
            if not isinstance(vs, int) or isinstance(vs, bool) or vs < 16:
                raise ValueError(f"tokenizers.{name}.vocab_size: expected an integer >= 16, got {vs!r}")
            if not cfg.get("train_on"):
                raise ValueError(f"tokenizers.{name}.train_on: name the dataset whose train split trains it")
        else:
            raise ValueError(f"tokenizers.{name}.type: expected gpt2, bpe or word, got {kind!r}")
        return cls(
            name=name,
            type=kind,
            path=cfg.get("path"),
            vocab_size=cfg.get("vocab_size"),
            train_on=cfg.get("train_on"),
            min_frequency=int(cfg.get("min_frequency", 2)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "path": self.path,
            "vocab_size": self.vocab_size,
            "train_on": self.train_on,
            "min_frequency": self.min_frequency,
        }


EOS = {"gpt2": "<|endoftext|>", "bpe": "<|endoftext|>", "word": "<eos>"}


def _train_tokenizer(spec: TokenizerSpec, texts: list[str]):
    if spec.type == "bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=spec.vocab_size,
            min_frequency=spec.min_frequency,
            special_tokens=[EOS["bpe"]],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
    else:
        tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
        trainer = trainers.WordLevelTrainer(
            vocab_size=spec.vocab_size,
            min_frequency=spec.min_frequency,
            special_tokens=["<unk>", EOS["word"]],
            show_progress=False,
        )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return tok


def tokenizer_key(
    spec: TokenizerSpec, datasets_cfg: Mapping[str, Any] | None = None, root: str | os.PathLike | None = None
) -> str:
    """A hash naming the tokenizer's cache entries: its spec plus what it is made from."""
    if spec.type == "gpt2":
        folder = resolve_path(spec.path, root)  # type: ignore[arg-type]
        parts: Any = [
            spec.to_dict() | {"path": None},
            file_hash(folder / "vocab.json"),
            file_hash(folder / "merges.txt"),
        ]
    else:
        ds = (datasets_cfg or {}).get(spec.train_on)
        if ds is None:
            raise ValueError(f"tokenizers.{spec.name}.train_on: unknown dataset {spec.train_on!r}")
        parts = [spec.to_dict(), DatasetSpec.from_config(spec.train_on, ds).to_dict()]  # type: ignore[arg-type]
    return f"{spec.name}-{canonical_hash(parts)}"


def load_tokenizer(
    spec: TokenizerSpec,
    datasets_cfg: Mapping[str, Any] | None = None,
    cache_dir: str | os.PathLike = DEFAULT_CACHE,
    root: str | os.PathLike | None = None,
):
    """A ``transformers.PreTrainedTokenizerFast`` for ``spec`` (what lm-eval's HFLM wants).

    The GPT-2 tokenizer is built from a ``tokenizers`` object wrapped in ``PreTrainedTokenizerFast``
    (with transformers 5.x, constructing ``GPT2TokenizerFast`` from vocab/merges file arguments gives
    an empty tokenizer). A trained tokenizer is trained once and cached as ``tokenizer.json``.
    """
    from transformers import PreTrainedTokenizerFast

    if spec.type == "gpt2":
        folder = resolve_path(spec.path, root)  # type: ignore[arg-type]
        for f in ("vocab.json", "merges.txt"):
            if not (folder / f).is_file():
                raise FileNotFoundError(f"tokenizers.{spec.name}.path: no {f} in {folder}")
        raw = Tokenizer(models.BPE.from_file(str(folder / "vocab.json"), str(folder / "merges.txt")))
        raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # GPT-2's byte-level BPE
        raw.decoder = decoders.ByteLevel()
    else:
        path = Path(cache_dir) / "tokenizers" / f"{tokenizer_key(spec, datasets_cfg, root)}.json"
        if not path.is_file():
            ds = DatasetSpec.from_config(spec.train_on, datasets_cfg[spec.train_on])  # type: ignore[index]
            raw = _train_tokenizer(spec, split_text(ds, "train", root))
            with atomic_path(path) as tmp:
                raw.save(str(tmp))
        raw = Tokenizer.from_file(str(path))
    eos = EOS[spec.type]
    fast = PreTrainedTokenizerFast(
        tokenizer_object=raw, eos_token=eos, bos_token=eos, unk_token="<unk>" if spec.type == "word" else eos
    )
    fast.model_max_length = 1 << 30
    return fast


# -- tokenized splits -----------------------------------------------------------------------------
@dataclass(frozen=True)
class TokenizedSplit:
    """A memory-mapped id array and the counts that word/byte-level perplexity divide by."""

    ids: np.ndarray
    n_words: int
    n_bytes: int
    vocab_size: int
    path: Path


def _encode(tokenizer, texts: list[str], append_eos: bool) -> np.ndarray:
    raw = tokenizer.backend_tokenizer
    eos = tokenizer.eos_token_id
    dtype = np.uint16 if len(tokenizer) <= 1 << 16 else np.uint32
    chunks = []
    for start in range(0, len(texts), 4096):
        for enc in raw.encode_batch(texts[start : start + 4096], add_special_tokens=False):
            ids = enc.ids + ([eos] if append_eos and enc.ids else [])
            chunks.append(np.asarray(ids, dtype=dtype))
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=dtype)


def tokenized_split(
    dataset: DatasetSpec,
    tokenizer_spec: TokenizerSpec,
    split: str,
    datasets_cfg: Mapping[str, Any] | None = None,
    cache_dir: str | os.PathLike = DEFAULT_CACHE,
    root: str | os.PathLike | None = None,
    tokenizer=None,
) -> TokenizedSplit:
    """Token ids of one split, cached as ``.npy`` and returned memory-mapped (read-only).

    Rows are encoded one by one and concatenated (line breaks are part of the text, so byte-level
    tokenizers see them); the word-level tokenizer, which splits on whitespace, gets an ``<eos>``
    after every non-empty line instead, as in Transformer-XL's WikiText-103 preprocessing.
    """
    key = canonical_hash([dataset.to_dict(), split, tokenizer_key(tokenizer_spec, datasets_cfg, root)])
    base = Path(cache_dir) / "tokens" / f"{dataset.name}-{tokenizer_spec.name}-{split}-{key}"
    npy, meta = base.with_suffix(".npy"), base.with_suffix(".json")
    if not (npy.is_file() and meta.is_file()):
        tok = tokenizer or load_tokenizer(tokenizer_spec, datasets_cfg, cache_dir, root)
        texts = split_text(dataset, split, root)
        ids = _encode(tok, texts, append_eos=tokenizer_spec.type == "word")
        text = "".join(texts)
        info = {
            "n_tokens": int(ids.size),
            "n_words": len([w for w in _WORD.split(text) if w]),
            "n_bytes": len(text.encode("utf-8")),
            "vocab_size": len(tok),
            "dtype": str(ids.dtype),
        }
        npy.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(npy) as tmp, open(tmp, "wb") as fh:
            np.save(fh, ids)
        with atomic_path(meta) as tmp:
            tmp.write_text(json.dumps(info, sort_keys=True))
    info = json.loads(meta.read_text())
    ids = np.load(npy, mmap_mode="r")
    return TokenizedSplit(
        ids=ids, n_words=info["n_words"], n_bytes=info["n_bytes"], vocab_size=info["vocab_size"], path=npy
    )


# -- the data block of a config -------------------------------------------------------------------
@dataclass(frozen=True)
class DataConfig:
    """Which dataset and tokenizer a stage uses, with the registries they are looked up in."""

    dataset: DatasetSpec
    tokenizer: TokenizerSpec
    datasets_cfg: Mapping[str, Any]
    cache_dir: Path
    root: Path | None

    def split(self, split: str, tokenizer=None) -> TokenizedSplit:
        return tokenized_split(
            self.dataset, self.tokenizer, split, self.datasets_cfg, self.cache_dir, self.root, tokenizer=tokenizer
        )

    def load_tokenizer(self):
        return load_tokenizer(self.tokenizer, self.datasets_cfg, self.cache_dir, self.root)

    def vocab_size(self) -> int:
        return len(self.load_tokenizer())


def data_config(cfg: Mapping[str, Any], root: str | os.PathLike | None = None) -> DataConfig:
    """Parse a data block.

    ``cfg`` holds ``dataset`` and ``tokenizer``, each either a name looked up in ``datasets`` /
    ``tokenizers`` (the top-level config sections, passed in the same mapping) or an inline
    mapping, plus optional ``cache_dir`` (default ``results/cache/data``) and ``root``.
    """
    if not isinstance(cfg, Mapping):
        raise ValueError(f"data: expected a mapping, got {cfg!r}")
    datasets_cfg = dict(cfg.get("datasets") or {})
    tokenizers_cfg = dict(cfg.get("tokenizers") or {})
    for key in ("dataset", "tokenizer"):
        if key not in cfg:
            raise ValueError(f"data.{key}: missing")
    ds, tk = cfg["dataset"], cfg["tokenizer"]
    if isinstance(ds, str):
        if ds not in datasets_cfg:
            raise ValueError(f"data.dataset: unknown dataset {ds!r} (configured: {sorted(datasets_cfg)})")
        dspec = DatasetSpec.from_config(ds, datasets_cfg[ds])
    else:
        dspec = DatasetSpec.from_config("inline", ds)
        datasets_cfg.setdefault("inline", ds)
    if isinstance(tk, str):
        if tk not in tokenizers_cfg:
            raise ValueError(f"data.tokenizer: unknown tokenizer {tk!r} (configured: {sorted(tokenizers_cfg)})")
        tspec = TokenizerSpec.from_config(tk, tokenizers_cfg[tk])
    else:
        tspec = TokenizerSpec.from_config("inline", tk)
    root = cfg.get("root", root)
    cache = Path(cfg.get("cache_dir", DEFAULT_CACHE))
    if not cache.is_absolute() and root is not None:
        cache = Path(root) / cache
    return DataConfig(dspec, tspec, datasets_cfg, cache, Path(root) if root is not None else None)


def train_data_block(part: Mapping[str, Any]) -> dict[str, Any]:
    """The data block of the train dataset and tokenizer of a validation stage's config part
    (``train``, ``datasets``, ``tokenizers``)."""
    train = part["train"]
    return {
        "datasets": part["datasets"],
        "tokenizers": part["tokenizers"],
        "dataset": train["dataset"],
        "tokenizer": train["tokenizer"],
        "cache_dir": train.get("cache_dir", DEFAULT_CACHE),
    }


def train_data(part: Mapping[str, Any]) -> DataConfig:
    """``data_config`` of ``train_data_block(part)``."""
    return data_config(train_data_block(part))


# -- token batches: one window cutter for every consumer -----------------------------------------
def window_starts(n_tokens: int, batch_size: int, seq_len: int, rng: np.random.Generator) -> np.ndarray:
    """Random start offsets of ``batch_size`` windows of ``seq_len`` tokens inside ``n_tokens``."""
    if seq_len <= 0 or batch_size <= 0:
        raise ValueError(f"seq_len/batch_size: must be positive, got {seq_len}/{batch_size}")
    if n_tokens < seq_len:
        raise ValueError(f"seq_len: {seq_len} is longer than the split ({n_tokens} tokens)")
    return rng.integers(0, n_tokens - seq_len + 1, size=batch_size)


def gather(ids: np.ndarray, starts: np.ndarray, seq_len: int):
    """A LongTensor ``[len(starts), seq_len]`` of the windows starting at ``starts``."""
    rows = np.stack([np.asarray(ids[s : s + seq_len], dtype=np.int64) for s in starts])
    return torch.from_numpy(rows)


def random_windows(ids: Any, batch_size: int, seq_len: int, rng: np.random.Generator):
    """The token-batch builder: ``[batch_size, seq_len]`` LongTensor of windows of the 1-D id
    sequence ``ids`` (a numpy array, memory-mapped or not, or a CPU tensor) at random offsets drawn
    from ``rng``. Training, proxies and PAR's search all cut their batches here."""
    ids = ids.numpy() if hasattr(ids, "numpy") else ids
    return gather(ids, window_starts(len(ids), batch_size, seq_len, rng), seq_len)


def train_batch(ids: np.ndarray, step: int, batch_size: int, seq_len: int, seed: int):
    """The training batch of ``step``: random windows drawn from a generator seeded by (seed, step).

    A batch depends on the step number alone, so a resumed run needs no other data position.
    """
    return random_windows(ids, batch_size, seq_len, np.random.default_rng([int(seed), int(step)]))


def batch_stream(ids: Any, batch_size: int, seq_len: int, seed: int) -> Iterator[Any]:
    """An endless stream of ``random_windows`` batches from one generator seeded by ``seed``."""
    rng = np.random.default_rng(int(seed))
    while True:
        yield random_windows(ids, batch_size, seq_len, rng)


def load_batch(data_cfg: Mapping[str, Any], batch_size: int, seq_len: int, seed: int):
    """One ``[batch_size, seq_len]`` LongTensor of random windows from a split (default ``train``).

    Used by data-dependent proxies; ``data_cfg`` is a data block as for ``data_config`` (a
    ``split`` key picks another split). The same arguments always give the same batch.
    """
    dc = data_config(data_cfg)
    split = str(data_cfg.get("split", "train"))
    return random_windows(dc.split(split).ids, batch_size, seq_len, np.random.default_rng(int(seed)))


def text_batch(
    path: str | os.PathLike,
    batch_size: int,
    seq_len: int,
    seed: int,
    tokenizer_dir: str | os.PathLike = "$" + DATA_ENV + "/tokenizers/gpt2",
):
    """One seeded ``[batch_size, seq_len]`` batch of GPT-2 token ids from a plain text file (the
    GPT-2 byte-level BPE read from ``tokenizer_dir``, by default under ``$PARETOLM_DATA``)."""
    folder = resolve_path(tokenizer_dir)
    if not (folder / "vocab.json").is_file():
        raise ValueError(f"data: GPT-2 tokenizer not found at {folder} (set {DATA_ENV})")
    tok = ByteLevelBPETokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    ids = np.asarray(tok.encode(Path(path).read_text(encoding="utf-8")).ids, dtype=np.int64)
    if len(ids) < seq_len + 1:
        raise ValueError(f"data: {path} has {len(ids)} tokens, fewer than seq_len={seq_len} + 1")
    return random_windows(ids, batch_size, seq_len, np.random.default_rng(int(seed)))


def file_batch(path: str | os.PathLike, batch_size: int, seq_len: int, seed: int):
    """The token batch of data-dependent proxies named by one file: a config YAML (its
    ``proxies.data`` block, or a bare data block with ``dataset``/``tokenizer``; read by
    ``load_batch``, with the file's ``datasets``/``tokenizers`` sections) or a plain text file
    (``text_batch``)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"data: {path} is not a file")
    if path.suffix.lower() not in (".yaml", ".yml"):
        return text_batch(path, batch_size, seq_len, seed)
    cfg = yaml.safe_load(path.read_text())
    if not isinstance(cfg, Mapping):
        raise ValueError(f"data: {path} does not hold a mapping")
    proxies = cfg.get("proxies")
    block = proxies.get("data") if isinstance(proxies, Mapping) else None
    if block is None and "dataset" in cfg:
        block = cfg
    if not isinstance(block, Mapping):
        raise ValueError(f"data: {path} has no proxies.data block (nor dataset/tokenizer keys)")
    block = dict(block)
    for key in ("datasets", "tokenizers"):
        if key in cfg and key not in block:
            block[key] = cfg[key]
    return load_batch(block, batch_size, seq_len, seed)

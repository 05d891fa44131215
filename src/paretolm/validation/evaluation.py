"""Perplexity of trained models, and zero-/few-shot accuracy through lm-evaluation-harness.

How perplexity windows are formed. A split is one stream of token ids (the rows of the split,
concatenated in order; see ``paretolm.data``). A prefix token (BOS, or EOS when the tokenizer has no
BOS) is put in front so that the first real token is predicted too, as lm-eval's rolling
log-likelihood does. The stream is then scored with windows of ``seq_len`` input tokens:

* ``stride = seq_len`` (the default): **non-overlapping** windows. Window k feeds tokens
  ``[k*L, k*L + L)`` of the prefixed stream and scores the next-token prediction at each position,
  so every token is scored exactly once and the first token of window k is predicted from the end of
  window k-1 only through the one overlapping context token (lm-eval's ``context_len=1`` windows);
  the last window, usually shorter, is filled up to L tokens with earlier context it does not
  score again (as lm-eval's ``get_rolling_token_windows`` does);
* ``stride = S < seq_len``: **strided** windows. Each window holds L tokens ending S tokens after the
  previous one and scores only its last S predictions, so each token (after the first window) sees
  at least L - S tokens of context. Lower perplexity, S/L more compute per token.

Models with a recurrence memory (a backbone declaring ``segment_memory = True`` with ``mem_len > 0``:
Transformer-XL) are scored as Transformer-XL evaluates them when the windows do not overlap:
consecutive non-overlapping segments of ``seq_len`` tokens, one stream in order (batch 1, so the
result does not depend on ``batch_size``), each segment fed the memory (the last ``mem_len`` hidden
states of every layer) that the previous segments left; the last segment is simply shorter. Every
token is still scored once, now with up to ``mem_len`` tokens of extra context. ``memory=False``
asks for the windows above instead; strided windows never use the memory.

Token-level perplexity is ``exp(NLL / n_tokens)``; word-level ``exp(NLL / n_words)`` where
``n_words`` counts whitespace-separated words of the raw text, and byte-level ``exp(NLL / n_bytes)``
(UTF-8), so models with different tokenizers can be compared (lm-eval's ``word_perplexity`` and
``byte_perplexity`` definitions).

Zero-shot tasks are lm-eval task YAMLs that ``write_tasks`` generates for the local JSONL sets in
``../shared/data/zero-shot`` (``dataset_path: json``), evaluated by ``zero_shot`` on the model
instance and tokenizer through ``lm_eval.models.huggingface.HFLM`` (never ``trust_remote_code``).
A request longer than the model's context is cut from the left as HFLM cuts it, even when the
continuation alone is too long (then only its last tokens are scored; ``left_truncate``).
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace as dc_replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import yaml

from paretolm.data import DatasetSpec
from paretolm.validation.tasks import TASK_PREFIX, ZERO_SHOT_SETS


# -- perplexity -----------------------------------------------------------------------------------
def _logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    logits = out.logits if hasattr(out, "logits") else out[0]
    return logits


def memory_module(model: torch.nn.Module) -> torch.nn.Module | None:
    """The module that carries a recurrence memory across segments (the model itself, or the
    ``backbone`` of the Hugging Face wrapper), or None. A backbone declares it with the class
    attribute ``segment_memory = True`` (its ``forward`` takes ``mems=`` and returns
    ``LMOutput.mems``); a ``mem_len`` of 0 keeps no memory."""
    for m in (model, getattr(model, "backbone", None)):
        declared = isinstance(m, torch.nn.Module) and getattr(m, "segment_memory", False)
        if declared and int(getattr(m, "mem_len", 0) or 0) > 0:
            return m
    return None


def _score_with_memory(backbone: torch.nn.Module, stream: torch.Tensor, seq_len: int, device: torch.device) -> float:
    """Sum of NLLs over consecutive non-overlapping segments, each given the previous ones' memory."""
    total, mems, n = 0.0, None, stream.numel()
    for begin in range(0, n - 1, seq_len):
        end = min(begin + seq_len, n - 1)
        x = stream[begin:end].unsqueeze(0).to(device)
        y = stream[begin + 1 : end + 1].unsqueeze(0).to(device)
        out = backbone(x, mems=mems)
        logp = F.log_softmax(out.logits.float(), dim=-1)
        total += float(-logp.gather(-1, y.unsqueeze(-1)).sum())
        mems = out.mems
    return total


@torch.inference_mode()
def score_stream(
    model: torch.nn.Module,
    ids: Sequence[int] | np.ndarray | torch.Tensor,
    seq_len: int,
    stride: int | None = None,
    prefix_token: int | None = None,
    batch_size: int = 8,
    device: str | torch.device | None = None,
    memory: bool | None = None,
) -> tuple[float, int]:
    """Sum of next-token negative log-likelihoods (nats) over a stream, and how many tokens it
    scored; windows as described in the module docstring.

    ``memory``: None (default) carries a recurrence memory across segments when the model has one
    (``memory_module``) and the windows do not overlap; True insists (ValueError for a model without
    memory or with ``stride < seq_len``); False scores every window on its own.
    """
    if seq_len <= 0:
        raise ValueError(f"seq_len: must be positive, got {seq_len}")
    stride = seq_len if stride is None else stride
    if not 0 < stride <= seq_len:
        raise ValueError(f"stride: must be in 1..seq_len={seq_len}, got {stride}")
    recurrent = memory_module(model) if memory is not False else None
    if memory and recurrent is None:
        raise ValueError(f"memory: {type(model).__name__} keeps no recurrence memory (segment_memory, mem_len > 0)")
    if recurrent is not None and stride != seq_len:
        if memory:
            raise ValueError(f"memory: segments with memory do not overlap; stride={stride} < seq_len={seq_len}")
        recurrent = None  # strided windows: each window on its own, as for any model
    device = torch.device(device) if device is not None else next(model.parameters()).device
    stream = torch.as_tensor(np.asarray(ids, dtype=np.int64))
    if prefix_token is not None:
        stream = torch.cat([torch.tensor([prefix_token]), stream])
    n = stream.numel()
    if n < 2:
        return 0.0, 0
    if recurrent is not None:
        was_training = recurrent.training
        recurrent.eval()
        try:
            return _score_with_memory(recurrent, stream, seq_len, device), n - 1
        finally:
            recurrent.train(was_training)
    # (begin, end, n_new): input stream[begin:end], labels stream[begin+1:end+1], last n_new scored
    windows: list[tuple[int, int, int]] = []
    prev_end, end = 0, min(seq_len, n - 1)
    while True:
        windows.append((max(0, end - seq_len), end, end - prev_end))
        if end == n - 1:
            break
        prev_end, end = end, min(end + stride, n - 1)
    was_training = model.training
    model.eval()
    total = 0.0
    try:
        i = 0
        while i < len(windows):
            length = windows[i][1] - windows[i][0]
            group = [windows[i]]
            while (
                i + len(group) < len(windows)
                and len(group) < batch_size
                and windows[i + len(group)][1] - windows[i + len(group)][0] == length
            ):
                group.append(windows[i + len(group)])
            x = torch.stack([stream[b:e] for b, e, _ in group]).to(device)
            y = torch.stack([stream[b + 1 : e + 1] for b, e, _ in group]).to(device)
            logp = F.log_softmax(_logits(model, x).float(), dim=-1)
            nll = -logp.gather(-1, y.unsqueeze(-1)).squeeze(-1)
            for row, (_, _, n_new) in enumerate(group):
                total += float(nll[row, length - n_new :].sum())
            i += len(group)
    finally:
        model.train(was_training)
    return total, n - 1


def _summary(nll: float, n_tokens: int, n_words: int, n_bytes: int) -> dict[str, float]:
    return {
        "nll": nll,
        "n_tokens": n_tokens,
        "n_words": n_words,
        "n_bytes": n_bytes,
        "ppl": math.exp(nll / n_tokens) if n_tokens else float("nan"),
        "word_ppl": math.exp(nll / n_words) if n_words else float("nan"),
        "byte_ppl": math.exp(nll / n_bytes) if n_bytes else float("nan"),
        "bits_per_byte": nll / n_bytes / math.log(2) if n_bytes else float("nan"),
    }


def prefix_token_of(tokenizer: Any) -> int | None:
    """lm-eval's choice of rolling prefix: BOS, else EOS."""
    if getattr(tokenizer, "bos_token_id", None) is not None:
        return tokenizer.bos_token_id
    return getattr(tokenizer, "eos_token_id", None)


def split_perplexity(
    model: torch.nn.Module,
    split: Any,
    seq_len: int,
    stride: int | None = None,
    prefix_token: int | None = None,
    batch_size: int = 8,
    max_tokens: int | None = None,
    memory: bool | None = None,
) -> dict[str, float]:
    """Perplexities of a ``paretolm.data.TokenizedSplit`` (``max_tokens`` scores a prefix only;
    word and byte counts are then scaled by the fraction of tokens scored). ``memory`` as for
    ``score_stream``: by default a Transformer-XL carries its memory across segments."""
    ids = split.ids
    frac = 1.0
    if max_tokens is not None and max_tokens < len(ids):
        frac = max_tokens / len(ids)
        ids = ids[:max_tokens]
    nll, n = score_stream(model, ids, seq_len, stride, prefix_token, batch_size, memory=memory)
    return _summary(nll, n, int(round(split.n_words * frac)), int(round(split.n_bytes * frac)))


def docs_perplexity(
    model: torch.nn.Module,
    tokenizer: Any,
    docs: Iterable[str],
    seq_len: int,
    stride: int | None = None,
    batch_size: int = 8,
) -> dict[str, float]:
    """Perplexities over documents each scored on its own from a prefix token (lm-eval's
    ``loglikelihood_rolling``); words counted as lm-eval does (``re.split(r"\\s+", doc)``)."""
    prefix = prefix_token_of(tokenizer)
    nll, n_tok, n_words, n_bytes = 0.0, 0, 0, 0
    for doc in docs:
        ids = tokenizer(doc, add_special_tokens=False)["input_ids"]
        s, k = score_stream(model, ids, seq_len, stride, prefix, batch_size)
        nll, n_tok = nll + s, n_tok + k
        n_words += len(re.split(r"\s+", doc))
        n_bytes += len(doc.encode("utf-8"))
    return _summary(nll, n_tok, n_words, n_bytes)


# -- lm-eval tasks --------------------------------------------------------------------------------
def _task_config(name: str, path: Path, schema: str) -> dict[str, Any]:
    base: dict[str, Any] = {
        "task": TASK_PREFIX + name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"validation": str(path)}},
        "validation_split": "validation",
        "fewshot_split": "validation",
        "num_fewshot": 0,
        "metadata": {"version": 1.0, "source": path.name},
    }
    if schema == "cloze":
        base.update(
            {
                "output_type": "loglikelihood",
                "doc_to_text": "{{context}}",
                "doc_to_target": "{{continuation}}",
                "target_delimiter": " ",
                "metric_list": [
                    {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                    {"metric": "perplexity"},
                ],
            }
        )
    elif schema == "choice":
        base.update(
            {
                "output_type": "multiple_choice",
                "doc_to_text": "{{query}}",
                "doc_to_choice": "choices",
                "doc_to_target": "gold",
                "metric_list": [
                    {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                    {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
                ],
            }
        )
    elif schema == "partial":
        # Winograd-style: the choices are the contexts, the continuation is shared; doc_to_text
        # naming the integer field ``gold`` tells lm-eval the choices go into the context.
        base.update(
            {
                "output_type": "multiple_choice",
                "doc_to_text": "gold",
                "doc_to_choice": "context_options",
                "doc_to_target": "continuation",
                "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
            }
        )
    elif schema == "rolling":
        base.update(
            {
                "output_type": "loglikelihood_rolling",
                "doc_to_text": "",
                "doc_to_target": "{{page}}",
                "metric_list": [{"metric": m} for m in ("word_perplexity", "byte_perplexity", "bits_per_byte")],
            }
        )
    else:
        raise ValueError(f"schema: unknown task schema {schema!r}")
    return base


def write_tasks(
    out_dir: str | os.PathLike,
    data_dir: str | os.PathLike,
    names: Sequence[str],
    extra: Mapping[str, tuple[str | os.PathLike, str]] | None = None,
) -> list[str]:
    """Write one lm-eval task YAML per named set into ``out_dir``; return the task names.

    ``names`` come from ``ZERO_SHOT_SETS`` (files under ``data_dir``); ``extra`` adds sets given as
    ``name -> (jsonl path, schema)`` with schema ``cloze``, ``choice``, ``partial`` or ``rolling``
    (documents in a ``page`` field, scored with rolling log-likelihood).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sets: dict[str, tuple[Path, str]] = {}
    for name in names:
        if name not in ZERO_SHOT_SETS:
            raise ValueError(f"evaluate.zero_shot.tasks: unknown set {name!r} (known: {sorted(ZERO_SHOT_SETS)})")
        file, schema = ZERO_SHOT_SETS[name]
        sets[name] = (Path(data_dir) / file, schema)
    for name, (path, schema) in (extra or {}).items():
        sets[name] = (Path(path), schema)
    tasks = []
    for name, (path, schema) in sets.items():
        if not path.is_file():
            raise FileNotFoundError(f"evaluate.zero_shot: no file {path} for task {name!r}")
        cfg = _task_config(name, path.resolve(), schema)
        (out / f"{TASK_PREFIX}{name}.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        tasks.append(cfg["task"])
    return tasks


def model_context(model: torch.nn.Module) -> int | None:
    """The most tokens ``model`` takes in one forward pass, from its config as lm-eval reads it
    (``n_positions``, ``max_position_embeddings``, ``n_ctx``; the wrapper's is the spec's
    ``max_seq_len``), or None when the config names none."""
    config = getattr(model, "config", None)
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def left_truncate(context: list[int], continuation: list[int], max_length: int) -> tuple[list[int], list[int]]:
    """A ``loglikelihood`` request cut to ``max_length`` input tokens, from the left, as lm-eval's
    HFLM cuts it: the model reads ``(context + continuation)[-(max_length + 1):][:-1]``.

    HFLM does that cut itself but asserts that the continuation alone fits; when it does not,
    the same window holds only continuation tokens: its first one becomes the context and the
    continuation's log-likelihood is that of its last ``max_length`` tokens."""
    if len(continuation) <= max_length:
        return context, continuation  # HFLM's own cut of the context is the one wanted
    window = (context + continuation)[-(max_length + 1) :]
    return window[:1], window[1:]


def lm_eval_model(model: torch.nn.Module, tokenizer: Any, batch_size: int = 8, max_length: int | None = None):
    """lm-eval's HFLM around a model instance (a ``transformers.PreTrainedModel``).

    ``add_bos_token=False``: text is encoded without special tokens and lm-eval's own prefix token
    (BOS, else EOS) starts each rolling window, the same convention as ``docs_perplexity``.

    Requests longer than the context are cut from the left as HFLM cuts them (``left_truncate``),
    continuations longer than the context included, instead of failing; ``max_length`` (default:
    the model's context) is capped at the model's context (``model_context``), so the model never
    reads more tokens than its positions cover.
    """
    from lm_eval.models.huggingface import HFLM

    class LeftTruncatingHFLM(HFLM):
        def _loglikelihood_tokens(self, requests, *args, **kwargs):
            limit = self.max_length
            fitted = [(key, *left_truncate(list(ctx), list(cont), limit)) for key, ctx, cont in requests]
            return super()._loglikelihood_tokens(fitted, *args, **kwargs)

    context = model_context(model)
    if context is not None:
        max_length = context if max_length is None else min(int(max_length), context)
    device = str(next(model.parameters()).device)
    return LeftTruncatingHFLM(
        pretrained=model,
        tokenizer=tokenizer,
        batch_size=batch_size,
        max_length=max_length,
        device=device,
        add_bos_token=False,
        trust_remote_code=False,
    )


def run_lm_eval(
    lm: Any,
    task_dir: str | os.PathLike,
    tasks: Sequence[str],
    limit: int | float | None,
    num_fewshot: int = 0,
    seed: int = 0,
    bootstrap_iters: int = 0,
) -> dict[str, Any]:
    """``lm_eval.simple_evaluate`` on tasks from ``task_dir``; returns its ``results`` mapping."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(task_dir), include_defaults=False)
    out = lm_eval.simple_evaluate(
        model=lm,
        tasks=list(tasks),
        num_fewshot=num_fewshot,
        limit=limit,
        task_manager=tm,
        bootstrap_iters=bootstrap_iters,
        log_samples=False,
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        fewshot_random_seed=seed,
    )
    return out["results"]


def zero_shot(
    model: torch.nn.Module,
    tokenizer: Any,
    tasks: Sequence[str],
    data_dir: str | os.PathLike,
    limit: int | float | None = None,
    num_fewshot: int = 0,
    batch_size: int = 8,
    seed: int = 0,
    max_length: int | None = None,
    bootstrap_iters: int = 0,
) -> pd.DataFrame:
    """Accuracy of ``model`` on the named local sets: one row per (task, metric) with ``value``,
    ``stderr`` (NaN unless ``bootstrap_iters`` > 0 or the metric has a closed form), ``num_fewshot``
    and ``limit``."""
    if not tasks:
        return pd.DataFrame(columns=["task", "metric", "value", "stderr", "num_fewshot", "limit"])
    with tempfile.TemporaryDirectory(prefix="paretolm-tasks-") as tmp:
        names = write_tasks(tmp, data_dir, tasks)
        lm = lm_eval_model(model, tokenizer, batch_size, max_length)
        results = run_lm_eval(lm, tmp, names, limit, num_fewshot, seed, bootstrap_iters)
    rows = []
    for task, metrics in results.items():
        for key, value in metrics.items():
            if "," not in key or "_stderr" in key:
                continue
            metric = key.split(",")[0]
            err = metrics.get(f"{metric}_stderr,{key.split(',', 1)[1]}")
            rows.append(
                {
                    "task": task.removeprefix(TASK_PREFIX),
                    "metric": metric,
                    "value": float(value),
                    "stderr": float(err) if isinstance(err, (int, float)) else float("nan"),
                    "num_fewshot": num_fewshot,
                    "limit": limit,
                }
            )
    return pd.DataFrame(rows)


def mean_accuracy(table: pd.DataFrame) -> float:
    """Mean of each task's primary accuracy (``acc``) over the tasks of a ``zero_shot`` table."""
    acc = table[table["metric"] == "acc"]
    return float(acc["value"].mean()) if len(acc) else float("nan")


# -- workflow stages ------------------------------------------------------------------------------
SPLIT_PREFIX = {"validation": "valid", "test": "test", "train": "train"}


def evaluate_model(
    model: torch.nn.Module,
    tokenizer: Any,
    data_cfg: Any,
    ev: Mapping[str, Any],
    extra_data: Mapping[str, Any] | None = None,
    max_length: int | None = None,
) -> dict[str, Any]:
    """Every number the evaluate stage records for one trained model, as one flat row.

    ``ev`` is the ``evaluate`` config section: ``seq_len``, ``stride``, ``batch_size``,
    ``max_tokens``, ``splits`` (of the training dataset), ``datasets`` (other datasets, same
    tokenizer: out-of-domain perplexity) and ``zero_shot`` (``tasks``, ``limit``, ``num_fewshot``
    list, ``data_dir``, ``batch_size``, ``bootstrap_iters``, ``seed``). Zero-shot requests see up
    to ``max_length`` tokens (default ``seq_len``; never more than the model's context), cut from
    the left as lm-eval cuts them (``left_truncate``).
    """
    seq_len = int(ev["seq_len"])
    prefix = prefix_token_of(tokenizer)
    row: dict[str, Any] = {"eval_seq_len": seq_len, "eval_stride": ev.get("stride") or seq_len}
    recurrent = memory_module(model)
    # the memory length perplexity was scored with (0: windows on their own)
    row["eval_mem_len"] = int(recurrent.mem_len) if recurrent is not None and row["eval_stride"] == seq_len else 0
    jobs = [("", data_cfg, s) for s in ev.get("splits", ["validation", "test"])]
    for name, splits in (ev.get("datasets") or {}).items():
        spec = DatasetSpec.from_config(name, (extra_data or {})[name])
        jobs += [(f"{name}_", dc_replace(data_cfg, dataset=spec), s) for s in splits]
    for label, dc, split in jobs:
        res = split_perplexity(
            model,
            dc.split(split, tokenizer=tokenizer),
            seq_len,
            ev.get("stride"),
            prefix,
            int(ev.get("batch_size", 8)),
            ev.get("max_tokens"),
        )
        key = f"{label}{SPLIT_PREFIX.get(split, split)}"
        for metric in ("ppl", "word_ppl", "byte_ppl", "bits_per_byte"):
            row[f"{key}_{metric}"] = res[metric]
        row[f"{key}_tokens"] = res["n_tokens"]
    zs = ev.get("zero_shot") or {}
    if zs.get("tasks"):
        for k in zs.get("num_fewshot", [0]):
            table = zero_shot(
                model,
                tokenizer,
                zs["tasks"],
                zs["data_dir"],
                zs.get("limit"),
                int(k),
                int(zs.get("batch_size", 8)),
                int(zs.get("seed", 0)),
                max_length or seq_len,
                int(zs.get("bootstrap_iters", 0)),
            )
            for r in table.itertuples():
                row[f"{k}shot_{r.task}_{r.metric}"] = r.value
            row[f"{k}shot_mean_acc"] = mean_accuracy(table)
    return row

"""The zero-shot sets the evaluate stage knows, by task name (no torch: the config check reads it)."""

from __future__ import annotations

# name -> (file under the zero-shot folder, schema)
ZERO_SHOT_SETS: dict[str, tuple[str, str]] = {
    "lambada_openai": ("lambada_openai.jsonl", "cloze"),
    "hellaswag": ("hellaswag_val.jsonl", "choice"),
    "piqa": ("piqa.jsonl", "choice"),
    "arc_easy": ("arc_easy.jsonl", "choice"),
    "arc_challenge": ("arc_challenge.jsonl", "choice"),
    "openbookqa": ("openbook_qa.jsonl", "choice"),
    "boolq": ("boolq.jsonl", "choice"),
    "copa": ("copa.jsonl", "choice"),
    "siqa": ("siqa.jsonl", "choice"),
    "commonsense_qa": ("commonsense_qa.jsonl", "choice"),
    "winogrande": ("winogrande.jsonl", "partial"),
    "wsc": ("winograd_wsc.jsonl", "partial"),
}
TASK_PREFIX = "paretolm_"


__all__ = ["TASK_PREFIX", "ZERO_SHOT_SETS"]

"""FLOPs of a model's forward pass as PyTorch counts them: the check of the analytic counts
(``paretolm.core.counting``) against the instantiated model."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count


def measured_flops(model: Any, input_ids: torch.Tensor, count_sdpa: bool = True) -> int:
    """Forward FLOPs of ``model(input_ids)`` by ``torch.utils.flop_counter.FlopCounterMode``.

    On CUDA, FlopCounterMode counts ``scaled_dot_product_attention`` (its flash / efficient
    kernels); on CPU torch dispatches to ``_scaled_dot_product_flash_attention_for_cpu``, which it
    leaves out. ``count_sdpa=True`` adds that kernel with torch's own SDPA formula, so the CPU
    count equals the CUDA one; ``False`` shows what the stock counter reports on CPU.
    """
    mapping = {}
    if count_sdpa:

        def cpu_sdpa(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
            return sdpa_flop_count(query_shape, key_shape, value_shape)  # FlopCounterMode passes shapes

        mapping[torch.ops.aten._scaled_dot_product_flash_attention_for_cpu] = cpu_sdpa  # noqa: SLF001 (an aten op)
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        model(input_ids)
    return int(counter.get_total_flops())


__all__ = ["measured_flops"]

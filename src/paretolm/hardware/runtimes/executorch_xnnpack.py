"""Runtime ``executorch``: a causal model as ExecuTorch runs it on a phone or a board, lowered to
the XNNPACK backend and run by ExecuTorch's own runtime through its Python bindings
(``pip install 'paretolm[executorch]'``).

The model's cached step (``graphs.step_graph``: token ids and the flattened decoding cache in,
logits and the extended cache out) is exported with ``torch.export`` as two methods of one
program: ``forward`` (the prefill: a prompt of 2 to ``max_seq_len`` tokens, an empty cache) and
``decode`` (one token after 2 to ``max_seq_len - 1`` cached ones), both with symbolic lengths.
``int8`` quantizes every linear layer's weights per channel and its activations per call
(XNNPACK's dynamic 8-bit scheme, through the PT2E quantizer) before lowering; ``float32`` lowers
as is. ``to_edge_transform_and_lower`` delegates what XNNPACK runs to it and the rest to
ExecuTorch's portable kernels. A batch is run row by row (the programs take batch 1, as a device
serves one stream). Before a session is timed its logits (a prefill and two decoding steps) are
checked against PyTorch's. Peak memory: the resident memory a fresh program adds while it loads and
runs one prefill (ExecuTorch allocates outside PyTorch), at least the program and the prefill's
input and output.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from paretolm.core import lazy
from paretolm.hardware.runtimes import RUNTIMES, Runtime, Session, check_logits, resident_peak_bytes
from paretolm.hardware.runtimes.graphs import CacheLayout, cache_layout, step_graph

if TYPE_CHECKING:
    import torch
else:  # declaring the runtime imports neither torch nor ExecuTorch; loading a model does
    torch = lazy.module("torch")

MIN_TOKENS = 2  # the shortest prompt and cache the programs take (0 and 1 would be specialised)
PROGRAMS: OrderedDict[str, bytes] = OrderedDict()  # the latest lowered programs, by weights and dtype
KEEP = 8


def weights_key(model: Any, dtype: str) -> str:
    """A hash of ``model``'s spec, every weight and the dtype: the program lowered from them."""
    digest = hashlib.sha256(f"{model.spec.to_json()}|{dtype}".encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def program_of(model: Any, layout: CacheLayout, dtype: str) -> bytes:
    """The lowered program of ``model`` in ``dtype``; lowering takes tens of seconds, so a model
    measured again (a retry, a check and then the measurement) reuses the latest few programs."""
    key = weights_key(model, dtype)
    if key not in PROGRAMS:
        PROGRAMS[key] = lower(model, layout, model.spec.max_seq_len, dtype)
        if len(PROGRAMS) > KEEP:
            PROGRAMS.popitem(last=False)
    PROGRAMS.move_to_end(key)
    return PROGRAMS[key]


def lower(model: Any, layout: CacheLayout, max_seq_len: int, dtype: str) -> bytes:
    """The ``.pte`` program of ``model``'s prefill (``forward``) and decoding step (``decode``)."""
    export = lazy.attribute("torch.export:export")
    Dim = lazy.attribute("torch.export:Dim")
    exir = lazy.load("executorch.exir", extra="executorch")
    partitioner = lazy.attribute(
        "executorch.backends.xnnpack.partition.xnnpack_partitioner:XnnpackPartitioner", extra="executorch"
    )
    graph = step_graph(model, layout)

    def past(tokens: int) -> tuple[Any, ...]:
        return tuple(
            torch.zeros([tokens if d == axis else n for d, n in enumerate(shape)][1:]).unsqueeze(0)
            for shape, axis in zip(layout.empty_shapes, layout.seq_axes, strict=True)
        )

    prompt = Dim("prompt", min=MIN_TOKENS, max=max_seq_len)
    cached = Dim("cached", min=MIN_TOKENS, max=max_seq_len - 1)
    methods = {
        "forward": ((torch.zeros(1, 4, dtype=torch.long), *past(0)), ({1: prompt}, tuple({} for _ in past(0)))),
        "decode": (
            (torch.zeros(1, 1, dtype=torch.long), *past(4)),
            (None, tuple({a: cached} for a in layout.seq_axes)),
        ),
    }
    programs = {}
    for name, (args, dynamic) in methods.items():
        exported = export(graph, args, dynamic_shapes=dynamic, strict=False)
        if dtype == "int8":  # the quantized module takes its inputs flat
            flat = (dynamic[0], *dynamic[1])
            exported = export(quantized(exported.module(), args), args, dynamic_shapes=flat, strict=False)
        programs[name] = exported
    return exir.to_edge_transform_and_lower(programs, partitioner=[partitioner()]).to_executorch().buffer


def quantized(module: Any, args: tuple[Any, ...]) -> Any:
    """``module`` with XNNPACK's dynamic 8-bit quantization of its linear layers (per-channel
    weights), calibrated on ``args``."""
    pt2e = lazy.load("torchao.quantization.pt2e.quantize_pt2e", extra="executorch")
    xnnpack = lazy.load("executorch.backends.xnnpack.quantizer.xnnpack_quantizer", extra="executorch")
    quantizer = xnnpack.XNNPACKQuantizer().set_global(
        xnnpack.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True)
    )
    prepared = pt2e.prepare_pt2e(module, quantizer)
    prepared(*args)
    return pt2e.convert_pt2e(prepared)


class ExecuTorchSession(Session):
    """A program's ``forward`` and ``decode`` methods; the cache is the flat tensors of each row."""

    runtime = "executorch"

    def __init__(self, program: bytes, layout: CacheLayout):
        runtime = lazy.attribute("executorch.runtime:Runtime", extra="executorch").get()
        self.program_bytes, self.layout = program, layout
        self.program = runtime.load_program(program)
        self.prefill, self.decoder = self.program.load_method("forward"), self.program.load_method("decode")
        self.empty = [torch.zeros((1, *shape[1:])) for shape in layout.empty_shapes]
        self.check_error: float | None = None

    def __call__(self, ids: Any) -> Any:
        return torch.cat([self.prefill.execute([row[None], *self.empty])[0] for row in ids])

    def step(self, ids: Any, past: Any | None) -> tuple[Any, Any]:
        logits, present = [], []
        for r, row in enumerate(ids):
            if past is None:
                out = self.prefill.execute([row[None], *self.empty])
                parts, cache = [out[0]], list(out[1:])
            else:
                parts, cache = [], past[r]
                for j in range(row.numel()):  # the decode method takes one token
                    out = self.decoder.execute([row[None, j : j + 1], *cache])
                    parts.append(out[0])
                    cache = list(out[1:])
            logits.append(torch.cat(parts, dim=1))
            present.append(cache)
        return torch.cat(logits), present

    def weight_bytes(self) -> int:
        return len(self.program_bytes)

    def peak_bytes(self, ids: Any, weights: int) -> tuple[int, int]:
        """The resident memory a fresh program adds to the process at its high point while it is
        loaded and runs one prefill (at least the program and the prefill's input and output)."""
        out: list[Any] = []

        def run() -> None:
            fresh = ExecuTorchSession(self.program_bytes, self.layout)
            out.append(fresh(ids))

        peak = max(resident_peak_bytes(run), weights + ids.numel() * ids.element_size() + out[0].nbytes)
        return peak, peak - weights


class ExecuTorch(Runtime):
    name = "executorch"
    devices = ("cpu",)
    dtypes = ("float32", "int8")
    # float32 reorders sums; int8 weights and activations perturb every logit
    tolerance = {"float32": 1e-4, "int8": 0.2}

    def supports(self, spec: Any) -> str | None:
        if not spec.plugin.causal:
            return f"executorch runs causal models; {spec.backbone} is not one"
        if spec.backbone == "transformer_xl":  # its relative shift does not export with symbolic lengths
            return "transformer_xl's relative-position shift cannot be exported with symbolic lengths"
        return None

    def check(self, name: str, target: Mapping[str, Any]) -> None:
        super().check(name, target)
        try:
            lazy.load("executorch.runtime", extra="executorch")
            lazy.load("executorch.backends.xnnpack.partition.xnnpack_partitioner", extra="executorch")
        except ImportError as e:
            raise ValueError(f"hardware target {name!r}: runtime executorch needs ExecuTorch ({e})") from e

    def load(self, model: Any, settings: Any) -> Session:
        spec = model.spec
        reason = self.supports(spec)
        if reason:
            raise ValueError(f"executorch: {reason}")
        layout = cache_layout(model, spec.vocab_size)
        session = ExecuTorchSession(program_of(model, layout, settings.dtype), layout)
        session.check_error = check_logits(
            session, model, self.name, settings.dtype, self.tolerance[settings.dtype], causal=True, seed=settings.seed
        )
        return session

    def versions(self) -> dict[str, str]:
        version = lazy.load("executorch.version", extra="executorch")
        return {**super().versions(), "executorch_version": str(getattr(version, "__version__", "unknown"))}


RUNTIMES.add("executorch", ExecuTorch())

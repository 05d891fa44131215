"""Runtime ``llamacpp``: a ``llama`` model as llama.cpp runs it on the CPU, through
``llama-cpp-python`` (a source build of llama.cpp; ``pip install 'paretolm[llamacpp]'``).

The model is written to a GGUF file (``paretolm.models.gguf_file``; heterogeneous specs as
llama.cpp's layer-wise ``deci`` architecture) in float32 or float16, or quantized by llama.cpp's
own quantizer (``llama_model_quantize``) to ``q8_0``, ``q4_0`` or ``q4_k_m``, then loaded with a
context of ``max_seq_len`` tokens per sequence. Prefill is one ``llama_decode`` of the prompt (each
row of a batch its own sequence), decode one call per generated token after it, the cache being
llama.cpp's own; both are timed with llama.cpp's own timings (``llama_perf_context``: prompt and
generation evaluation time), as ``llama-bench`` reports them. Before a session is timed its
logits are checked against PyTorch's (``check_logits``), within the quantization's tolerance.
Peak memory: llama.cpp's own account of what it allocates for the model, a context holding the
target's batch (its key/value cache and compute buffers) and the logits of one prefill, as it logs
them when it loads (the resident memory of the process cannot tell: weights are mapped from the
file, and freed memory is reused).
"""

from __future__ import annotations

import ctypes
import re
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paretolm.core import lazy
from paretolm.hardware.runtimes import RUNTIMES, Runtime, Session, check_logits

if TYPE_CHECKING:
    import numpy as np
    import torch
else:  # declaring the runtime imports neither torch nor llama.cpp; loading a model does
    np = lazy.module("numpy")
    torch = lazy.module("torch")
gguf_file = lazy.module("paretolm.models.gguf_file", extra="llamacpp")

# llama.cpp's file types (llama_ftype) of the quantized dtypes
FTYPES = {"q8_0": 7, "q4_0": 2, "q4_k_m": 15}
SEQUENCES = 4  # sequences a session's context holds at least
BUFFER = re.compile(r"(model|KV|compute|output) buffer size =\s*([0-9.]+) MiB")


class Log:
    """llama.cpp's log (one per process, as llama.cpp's logger is): silent, but kept while
    ``capture`` is on, which is how llama.cpp tells what it allocates."""

    callback: Any = None
    lines: list[str] | None = None

    @classmethod
    def write(cls, level: int, text: bytes, user: Any) -> None:
        if cls.lines is not None:
            cls.lines.append(text.decode(errors="replace"))

    @classmethod
    def allocated(cls, fn: Callable[[], Any]) -> int:
        """Bytes of the buffers llama.cpp reports allocating while ``fn`` runs."""
        cls.lines = []
        try:
            fn()
            text = "".join(cls.lines)
        finally:
            cls.lines = None
        return int(sum(float(size) for _, size in BUFFER.findall(text)) * 2**20)


def llama_cpp() -> Any:
    """The ``llama_cpp`` bindings, with llama.cpp's logging routed to ``Log`` and its backend
    initialised."""
    lib = lazy.load("llama_cpp", extra="llamacpp")
    if Log.callback is None:
        Log.callback = lib.llama_log_callback(Log.write)  # kept alive as long as the library
        lib.llama_log_set(Log.callback, ctypes.c_void_p(0))
        lib.llama_backend_init()
    return lib


class LlamaCppModel:
    """A GGUF file loaded with a context: ``decode`` runs a batch of token rows from a position."""

    def __init__(self, path: Path, n_ctx: int, n_seq: int, threads: int, kv_f32: bool):
        lib = self.lib = llama_cpp()
        params = lib.llama_model_default_params()
        self.model = lib.llama_model_load_from_file(str(path).encode(), params)
        if not self.model:
            raise ValueError(f"llamacpp: llama.cpp cannot load {path}")
        ctx = lib.llama_context_default_params()
        ctx.n_seq_max, ctx.n_ctx = n_seq, n_ctx * n_seq
        ctx.n_batch = ctx.n_ubatch = n_ctx * n_seq
        ctx.n_threads = ctx.n_threads_batch = threads
        ctx.no_perf = False
        ctx.kv_unified = False
        if kv_f32:  # a float32 model keeps a float32 cache (llama.cpp's default is float16)
            ctx.type_k = ctx.type_v = lib.GGML_TYPE_F32
        self.ctx = lib.llama_init_from_model(self.model, ctx)
        if not self.ctx:
            lib.llama_model_free(self.model)
            raise ValueError("llamacpp: llama.cpp cannot create a context for the model")
        self.n_vocab = lib.llama_vocab_n_tokens(lib.llama_model_get_vocab(self.model))
        self.n_seq = n_seq
        self.batch = lib.llama_batch_init(ctx.n_batch, 0, n_seq)

    def clear(self) -> None:
        self.lib.llama_memory_clear(self.lib.llama_get_memory(self.ctx), True)

    def keep(self, tokens: int) -> None:
        """Forget every cached position from ``tokens`` on, in every sequence."""
        self.lib.llama_memory_seq_rm(self.lib.llama_get_memory(self.ctx), -1, tokens, -1)

    def decode(self, rows: np.ndarray, start: int) -> np.ndarray:
        """Logits ``(rows, tokens, vocab)`` of token rows ``(rows, tokens)`` at positions
        ``start ...``, each row its own sequence of the cache."""
        b, t = rows.shape
        if b > self.n_seq:
            raise ValueError(f"llamacpp: a batch of {b} rows, the context holds {self.n_seq} sequences")
        batch, n = self.batch, 0
        for r in range(b):
            for j in range(t):
                batch.token[n], batch.pos[n], batch.n_seq_id[n] = int(rows[r, j]), start + j, 1
                batch.seq_id[n][0], batch.logits[n] = r, 1
                n += 1
        batch.n_tokens = n
        if self.lib.llama_decode(self.ctx, batch) != 0:
            raise ValueError(f"llamacpp: llama_decode failed on {b} x {t} tokens at position {start}")
        logits = self.lib.llama_get_logits(self.ctx)
        return np.ctypeslib.as_array(logits, shape=(n, self.n_vocab)).reshape(b, t, self.n_vocab).copy()

    def milliseconds(self) -> float:
        """llama.cpp's prompt and generation evaluation time since the last ``reset_timings``."""
        perf = self.lib.llama_perf_context(self.ctx)
        return float(perf.t_p_eval_ms + perf.t_eval_ms)

    def reset_timings(self) -> None:
        self.lib.llama_perf_context_reset(self.ctx)

    def close(self) -> None:
        if getattr(self, "ctx", None):
            self.lib.llama_batch_free(self.batch)
            self.lib.llama_free(self.ctx)
            self.lib.llama_model_free(self.model)
            self.ctx = None

    def __del__(self) -> None:
        try:
            self.close()
        except TypeError:  # the interpreter is shutting down and the library is gone
            pass


class LlamaCppSession(Session):
    """A ``llama`` model in llama.cpp. The decoding cache is llama.cpp's; ``past`` is the number
    of tokens of it a step continues from (positions after it, cached by an earlier call from the
    same ``past``, are dropped first), so a step behaves as with a cache passed by value."""

    runtime = "llamacpp"

    def __init__(
        self,
        folder: tempfile.TemporaryDirectory,
        path: Path,
        n_ctx: int,
        n_seq: int,
        threads: int,
        kv_f32: bool,
        weights: int,
    ):
        self.folder, self.path = folder, path  # the file lives as long as the session
        self.args = (n_ctx, n_seq, threads, kv_f32)
        self.llm = LlamaCppModel(path, *self.args)
        self._weights = weights
        self.check_error: float | None = None

    def inputs(self, ids: Any) -> Any:
        return ids.cpu().numpy()

    def __call__(self, ids: Any) -> Any:
        self.llm.clear()
        return self.llm.decode(ids, 0)

    def step(self, ids: Any, past: Any | None) -> tuple[Any, Any]:
        start = past or 0
        self.llm.keep(start)
        return self.llm.decode(ids, start), start + ids.shape[1]

    def logits(self, value: Any) -> Any:
        return np.asarray(value, dtype=np.float32)

    def time_call(self, fn: Callable[[], Any]) -> float:
        """Milliseconds of ``fn`` by llama.cpp's own evaluation timings."""
        self.llm.reset_timings()
        fn()
        return self.llm.milliseconds()

    def weight_bytes(self) -> int:
        return self._weights

    def peak_bytes(self, ids: Any, weights: int) -> tuple[int, int]:
        """What llama.cpp allocates for the model and a context holding this batch alone, as the
        target would (module docstring), and the logits of one prefill of ``ids``."""
        n_ctx, _, threads, kv_f32 = self.args
        opened: list[LlamaCppModel] = []
        allocated = Log.allocated(lambda: opened.append(LlamaCppModel(self.path, n_ctx, ids.shape[0], threads, kv_f32)))
        llm = opened[0]
        logits = llm.decode(ids, 0)
        llm.close()
        peak = allocated + logits.nbytes
        return peak, max(0, peak - weights)

    def close(self) -> None:
        self.llm.close()
        self.folder.cleanup()


class LlamaCpp(Runtime):
    name = "llamacpp"
    devices = ("cpu",)
    dtypes = ("float32", "float16", "q8_0", "q4_0", "q4_k_m")
    # llama.cpp sums in another order and keeps a float16 cache beside float16 weights
    tolerance = {"float32": 0.001, "float16": 0.01, "q8_0": 0.05, "q4_0": 0.2, "q4_k_m": 0.2}

    def supports(self, spec: Any) -> str | None:
        return None if spec.backbone == "llama" else f"llama.cpp runs llama specs, not {spec.backbone}"

    def check(self, name: str, target: Mapping[str, Any]) -> None:
        super().check(name, target)
        for package, extra in (("llama_cpp", "llamacpp"), ("gguf", "llamacpp")):
            try:
                lazy.load(package, extra=extra)
            except ImportError as e:
                raise ValueError(f"hardware target {name!r}: runtime llamacpp needs {package} ({e})") from e

    def load(self, model: Any, settings: Any) -> Session:
        spec = model.spec
        reason = self.supports(spec)
        if reason:
            raise ValueError(f"llamacpp: {reason}")
        folder = tempfile.TemporaryDirectory(prefix="paretolm-gguf-")
        path = Path(folder.name) / "model.gguf"
        written = gguf_file.write_gguf(model, path, "float16" if settings.dtype == "float16" else "float32")
        if settings.dtype in FTYPES:
            path = quantize(path, Path(folder.name) / f"model.{settings.dtype}.gguf", settings.dtype, settings.threads)
        weights = gguf_tensor_bytes(path) if settings.dtype in FTYPES else written["tensor_bytes"]
        # room for a few sequences besides the target's batch, so that checks can decode other batch sizes
        session = LlamaCppSession(
            folder,
            path,
            spec.max_seq_len,
            max(SEQUENCES, settings.batch),
            settings.threads,
            settings.dtype == "float32",
            weights,
        )
        session.check_error = check_logits(
            session, model, self.name, settings.dtype, self.tolerance[settings.dtype], causal=True, seed=settings.seed
        )
        return session

    def versions(self) -> dict[str, str]:
        lib = llama_cpp()
        return {**super().versions(), "llama_cpp_python_version": lib.__version__}


def quantize(source: Path, out: Path, dtype: str, threads: int) -> Path:
    """``source`` quantized by llama.cpp's own quantizer to ``dtype`` (a tensor whose rows do not
    split into the type's blocks gets llama.cpp's fallback type)."""
    lib = llama_cpp()
    params = lib.llama_model_quantize_default_params()
    params.ftype, params.nthread = FTYPES[dtype], threads
    if lib.llama_model_quantize(str(source).encode(), str(out).encode(), ctypes.byref(params)) != 0:
        raise ValueError(f"llamacpp: llama.cpp could not quantize the model to {dtype}")
    return out


def gguf_tensor_bytes(path: Path) -> int:
    """Bytes of the tensors in a GGUF file."""
    reader = lazy.attribute("gguf:GGUFReader", extra="llamacpp")(str(path))
    return int(sum(t.n_bytes for t in reader.tensors))


RUNTIMES.add("llamacpp", LlamaCpp())

"""paretolm: hardware-aware, training-free architecture search for Transformer language models."""

__version__ = "0.1.0"

from paretolm.core.arch import ArchSpec  # noqa: E402

__all__ = ["ArchSpec", "__version__"]

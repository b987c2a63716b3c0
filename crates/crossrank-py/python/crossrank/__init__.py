"""crossrank: rerank (query, passage) pairs with the BAAI bge-reranker
family and other cross-encoders — FlagEmbedding's classes, arguments and
scores, on a Rust core (no PyTorch): quantized (q8/q4), on the CPU or a
GPU through wgpu.

    >>> from crossrank import FlagReranker
    >>> reranker = FlagReranker("BAAI/bge-reranker-base", use_fp16=True)  # doctest: +SKIP
    >>> reranker.compute_score([["what is panda?", "The giant panda is a bear."]])  # doctest: +SKIP

See ``FlagReranker``, ``FlagLLMReranker``, ``LayerWiseFlagLLMReranker``
(FlagEmbedding's API), ``Reranker`` (``rerank(query, documents)``),
``Embedder`` and ``quantize``. Every error is a ``crossrank.Error``.
"""

from ._api import Embedder, Reranker, quantize
from ._crossrank import __version__, cpu_int8_kernels
from ._errors import DeviceError, Error, InvalidInputError, ModelIOError, ModelNotFoundError
from ._flag import FlagLLMReranker, FlagReranker, LayerWiseFlagLLMReranker

__all__ = [
    "FlagReranker",
    "FlagLLMReranker",
    "LayerWiseFlagLLMReranker",
    "Reranker",
    "Embedder",
    "quantize",
    "cpu_int8_kernels",
    "Error",
    "ModelNotFoundError",
    "ModelIOError",
    "InvalidInputError",
    "DeviceError",
    "__version__",
]

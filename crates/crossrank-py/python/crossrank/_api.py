"""crossrank's own Python API beside FlagEmbedding's classes: ``Reranker``
(``rerank`` in sentence-transformers' ``CrossEncoder.rank`` shape),
``Embedder`` and ``quantize``."""

from __future__ import annotations

import json
import os
import threading
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ._crossrank import EmbedderModel, RerankerModel
from ._crossrank import quantize as _quantize
from ._options import device_choice, flag_pairs, texts

__all__ = ["Reranker", "Embedder", "quantize"]

_env_lock = threading.Lock()


def _load(cls, spec: str, cache_dir: Optional[str], *args):
    """``cls(spec, *args)``; with ``cache_dir``, downloading into that
    Hugging Face cache: the core reads ``HF_HUB_CACHE``, set for the load
    (under a lock, restored after)."""
    if cache_dir is None:
        return cls(spec, *args)
    with _env_lock:
        saved = os.environ.get("HF_HUB_CACHE")
        os.environ["HF_HUB_CACHE"] = os.fspath(cache_dir)
        try:
            return cls(spec, *args)
        finally:
            if saved is None:
                del os.environ["HF_HUB_CACHE"]
            else:
                os.environ["HF_HUB_CACHE"] = saved


def _warn(key: str, message: str) -> None:
    warnings.warn(message, stacklevel=3)


def _numpy(values: Any) -> Any:
    import numpy as np  # only when asked for

    return np.asarray(values, dtype=np.float32)


class Reranker:
    """A reranker loaded once: ``compute_score`` pairs, ``rerank`` documents.

    ``model``: a checkpoint directory or a Hub repo id (``owner/name[@revision]``,
    downloaded into the Hugging Face cache). ``device``: ``"auto"`` (a GPU
    that passes crossrank's self-check, else the CPU), ``"cpu"``, ``"wgpu"``.
    ``dtype``: ``"f32"``, ``"f16"``, ``"q8"``, ``"int8"`` (q8 weights,
    8-bit activations on the CPU), ``"q4"``, ``"q4-all"``.
    Other keyword arguments are default score options (``max_length``,
    ``query_max_length``, ``batch_size``, ``normalize``, ``prompt``,
    ``cutoff_layers``, ``query_instruction``, ``passage_instruction``,
    ``long_passages``, ``passage_stride``, ``max_batch_tokens``).
    """

    def __init__(self, model: str, *, device: str = "auto", dtype: str = "f32", cache_dir: Optional[str] = None, **options: Any) -> None:
        self.model_name_or_path = model
        self._model = _load(RerankerModel, model, cache_dir, device_choice(device, _warn), dtype)
        self.options = dict(options)

    @property
    def device(self) -> str:
        """``"cpu"`` or ``"wgpu"``."""
        return self._model.device

    @property
    def dtype(self) -> str:
        return self._model.dtype

    @property
    def architecture(self) -> str:
        return self._model.architecture

    def _opts(self, options: Dict[str, Any]) -> str:
        merged = {**self.options, **options}
        return json.dumps({k: v for k, v in merged.items() if v is not None})

    def compute_score(self, pairs: Any, *, to_numpy: bool = False, **options: Any) -> Any:
        """Scores of ``[(query, passage), ...]`` in input order (one list per
        layer for a layer-wise model asked for several ``cutoff_layers``)."""
        pairs = flag_pairs(pairs)
        opts = self._opts(options)
        if not pairs:
            return _numpy([]) if to_numpy else []
        layers = self._model.compute_score(pairs, opts)
        out = layers[0] if len(layers) == 1 else layers
        return _numpy(out) if to_numpy else out

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        top_k: Optional[int] = None,
        return_documents: bool = False,
        **options: Any,
    ) -> List[Dict[str, Any]]:
        """``documents`` best first for ``query``: ``[{"index", "score"[, "document"]}]``
        (sentence-transformers' ``CrossEncoder.rank`` shape), at most
        ``top_k``; ties keep input order, NaN scores go last."""
        docs = texts(documents, "documents")
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0):
            raise ValueError(f"top_k must be a non-negative integer or None, not {top_k!r}")
        ranked = self._model.rerank(str(query), docs, top_k, self._opts(options))
        out = [{"index": i, "score": float(s)} for i, s in ranked]
        if return_documents:
            for r in out:
                r["document"] = docs[r["index"]]
        return out

    def __repr__(self) -> str:
        return f"Reranker({self.model_name_or_path!r}, device={self.device!r}, dtype={self.dtype!r})"


class Embedder:
    """A sentence embedder (e.g. all-MiniLM-L6-v2) for a dense first stage:
    pooling, normalization and length as the checkpoint's
    sentence-transformers files say unless given."""

    def __init__(self, model: str, *, device: str = "auto", dtype: str = "f32", cache_dir: Optional[str] = None) -> None:
        self.model_name_or_path = model
        self._model = _load(EmbedderModel, model, cache_dir, device_choice(device, _warn), dtype)

    @property
    def device(self) -> str:
        return self._model.device

    def embed(
        self,
        sentences: Union[str, Sequence[str]],
        *,
        max_length: Optional[int] = None,
        pooling: Optional[str] = None,
        normalize: Optional[bool] = None,
        batch_size: Optional[int] = None,
        prompt: Optional[str] = None,
        prompt_name: Optional[str] = None,
        to_numpy: bool = False,
    ) -> Any:
        """One vector per text (one vector for a single string). ``prompt``
        is put before every text; ``prompt_name`` picks one of the model's
        prompts (``"query"`` for Qwen3-Embedding), as sentence-transformers'
        arguments of those names do."""
        single = isinstance(sentences, str)
        items = [sentences] if single else texts(sentences, "sentences")
        vectors = (
            self._model.embed(items, max_length, pooling, normalize, batch_size, prompt, prompt_name) if items else []
        )
        out = vectors[0] if single else vectors
        return _numpy(out) if to_numpy else out

    # sentence-transformers' name.
    encode = embed

    def __repr__(self) -> str:
        return f"Embedder({self.model_name_or_path!r}, device={self.device!r})"


def quantize(src: str, dst: Union[str, "os.PathLike[str]"], dtype: str = "q8") -> Dict[str, Any]:
    """``crossrank quantize``: write ``src`` (a directory or Hub repo id)
    with its weights stored as ``dtype`` (``"f16"``, ``"q8"``, ``"int8"``, ``"q4"``,
    ``"q4-all"``) into the directory ``dst``, replacing a previous output
    there as a whole. Returns the report (tensors quantized and kept,
    bytes in and out, files written)."""
    return json.loads(_quantize(src, os.fspath(dst), dtype))

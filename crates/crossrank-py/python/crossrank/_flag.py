"""FlagEmbedding 1.4.2's reranker classes — ``FlagReranker``,
``FlagLLMReranker``, ``LayerWiseFlagLLMReranker`` — with their
constructor arguments, defaults and ``compute_score`` results, on
crossrank's core (no PyTorch).

What each argument becomes is decided here; what the model does with the
options (tokenization, truncation, batching, the scores) is the core's.
"""

from __future__ import annotations

import json
import warnings
from typing import Any, List, Optional, Sequence, Tuple, Union

from ._api import _load
from ._crossrank import RerankerModel
from ._options import device_choice, flag_pairs, instruction

__all__ = ["FlagReranker", "FlagLLMReranker", "LayerWiseFlagLLMReranker"]

Pairs = Union[Sequence[Tuple[str, str]], Tuple[str, str], Sequence[Sequence[str]]]

# compute_score's keyword arguments crossrank reads beyond FlagEmbedding's
# (ScoreOptions' names).
_EXTRA_SCORE_OPTIONS = ("long_passages", "passage_stride", "max_batch_tokens")

_warned: set = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, stacklevel=3)


class _FlagBase:
    """What the three classes share (FlagEmbedding's ``AbsReranker``)."""

    # The score options this class passes on from its constructor.
    _score_keys: Tuple[str, ...] = ()

    def __init__(
        self,
        model_name_or_path: str,
        use_fp16: bool,
        query_instruction_for_rerank: Optional[str],
        query_instruction_format: str,
        passage_instruction_for_rerank: Optional[str],
        passage_instruction_format: str,
        devices: Any,
        batch_size: int,
        query_max_length: Optional[int],
        max_length: int,
        normalize: bool,
        cache_dir: Optional[str],
        dtype: Optional[str],
        kwargs: dict,
    ) -> None:
        self.model_name_or_path = model_name_or_path
        self.use_fp16 = use_fp16
        self.query_instruction_for_rerank = query_instruction_for_rerank
        self.query_instruction_format = query_instruction_format
        self.passage_instruction_for_rerank = passage_instruction_for_rerank
        self.passage_instruction_format = passage_instruction_format
        self.batch_size = batch_size
        self.query_max_length = query_max_length
        self.max_length = max_length
        self.normalize = normalize
        self.cache_dir = cache_dir
        # FlagEmbedding keeps unknown keyword arguments as attributes; so do we.
        for k, v in kwargs.items():
            setattr(self, k, v)
        self.kwargs = kwargs
        ignored = sorted(kwargs)
        if ignored:
            _warn_once(
                f"init:{type(self).__name__}:{','.join(ignored)}",
                f"crossrank.{type(self).__name__}: ignoring {', '.join(ignored)} (FlagEmbedding arguments crossrank has no use for)",
            )
        device = device_choice(devices, _warn_once)
        self._model = _load(RerankerModel, model_name_or_path, cache_dir, device, dtype or "f32", bool(use_fp16) and dtype is None)
        self.target_devices = [self._model.device]

    @property
    def device(self) -> str:
        """The device scoring runs on: ``"cpu"`` or ``"wgpu"``."""
        return self._model.device

    def _options(self, batch_size, query_max_length, max_length, normalize, kwargs) -> dict:
        opts = {
            "batch_size": self.batch_size if batch_size is None else batch_size,
            "max_length": self.max_length if max_length is None else max_length,
            "query_max_length": self.query_max_length if query_max_length is None else query_max_length,
            "normalize": bool(self.normalize if normalize is None else normalize),
        }
        for key in self._score_keys:
            value = kwargs.pop(key, None)
            if value is None:
                value = getattr(self, key, None)
            if value is not None:
                opts[key] = list(value) if key == "cutoff_layers" else value
        for key in _EXTRA_SCORE_OPTIONS:
            if kwargs.get(key) is not None:
                opts[key] = kwargs.pop(key)
        if kwargs:
            _warn_once(
                f"score:{type(self).__name__}:{','.join(sorted(kwargs))}",
                f"crossrank.{type(self).__name__}.compute_score: ignoring {', '.join(sorted(kwargs))}",
            )
        return opts

    def compute_score(
        self,
        sentence_pairs: Pairs,
        batch_size: Optional[int] = None,
        query_max_length: Optional[int] = None,
        max_length: Optional[int] = None,
        normalize: Optional[bool] = None,
        **kwargs: Any,
    ) -> Union[List[float], List[List[float]]]:
        """Scores of ``[(query, passage), ...]`` (or one ``(query, passage)``),
        in input order: raw logits, or sigmoids with ``normalize``.

        As FlagEmbedding 1.4.2 returns them: a list of floats — also for a
        single pair (``[score]``) — and, for a layer-wise model asked for
        several ``cutoff_layers``, one list per layer. Arguments left
        ``None`` take the constructor's values. crossrank also reads
        ``long_passages="maxp"``, ``passage_stride`` and ``max_batch_tokens``.
        """
        pairs = flag_pairs(sentence_pairs)
        q_prefix, q_format = instruction(self.query_instruction_format, self.query_instruction_for_rerank)
        p_prefix, p_format = instruction(self.passage_instruction_format, self.passage_instruction_for_rerank)
        if q_format or p_format:
            pairs = [(q_format(q) if q_format else q, p_format(p) if p_format else p) for q, p in pairs]
        opts = self._options(batch_size, query_max_length, max_length, normalize, dict(kwargs))
        opts["query_instruction"] = q_prefix
        opts["passage_instruction"] = p_prefix
        if not pairs:
            return []
        layers = self._model.compute_score(pairs, json.dumps(opts))
        # Python floats already (the extension returns lists of float).
        return layers[0] if len(layers) == 1 else layers

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_name_or_path!r}, device={self.device!r}, dtype={self._model.dtype!r})"


class FlagReranker(_FlagBase):
    """A cross-encoder reranker (bge-reranker-base/large/v2-m3, ms-marco
    MiniLM, any ``*ForSequenceClassification`` checkpoint crossrank runs):
    FlagEmbedding's ``FlagReranker``.

    >>> r = FlagReranker("BAAI/bge-reranker-base", use_fp16=True)  # doctest: +SKIP
    >>> r.compute_score([["what is panda?", "The giant panda is a bear."]], normalize=True)  # doctest: +SKIP
    [0.99...]

    ``use_fp16``: f16 weights on a GPU (ignored on the CPU, as FlagEmbedding
    does). ``devices``: ``None`` (a GPU that passes crossrank's self-check,
    else the CPU), ``"cpu"``, ``"auto"``, ``"wgpu"``; ``"cuda"``,
    ``"cuda:0"``, ``"mps"`` or an int mean the GPU (through wgpu, with a
    warning). ``dtype``: crossrank's weight storage — ``"f32"``, ``"f16"``,
    ``"q8"``, ``"int8"``, ``"q4"``, ``"q4-all"`` (overrides ``use_fp16``).
    """

    def __init__(
        self,
        model_name_or_path: str,
        use_fp16: bool = False,
        query_instruction_for_rerank: Optional[str] = None,
        query_instruction_format: str = "{}{}",
        passage_instruction_for_rerank: Optional[str] = None,
        passage_instruction_format: str = "{}{}",
        trust_remote_code: bool = False,
        cache_dir: Optional[str] = None,
        devices: Union[None, str, int, List[str], List[int]] = None,
        batch_size: int = 128,
        query_max_length: Optional[int] = None,
        max_length: int = 512,
        normalize: bool = False,
        *,
        dtype: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        self.trust_remote_code = trust_remote_code  # crossrank never runs a checkpoint's code
        super().__init__(
            model_name_or_path, use_fp16, query_instruction_for_rerank, query_instruction_format,
            passage_instruction_for_rerank, passage_instruction_format, devices, batch_size,
            query_max_length, max_length, normalize, cache_dir, dtype, kwargs,
        )


class FlagLLMReranker(_FlagBase):
    """An LLM reranker (bge-reranker-v2-gemma and other decoder
    checkpoints crossrank runs): FlagEmbedding's ``FlagLLMReranker``. The
    score is the "Yes" logit after FlagEmbedding's prompt; ``prompt``
    replaces that prompt. Queries and passages get ``"A: "`` / ``"B: "``
    (``query_instruction_for_rerank`` / ``passage_instruction_for_rerank``)
    as FlagEmbedding puts them. See ``FlagReranker`` for ``devices``,
    ``use_fp16`` and ``dtype``; ``use_bf16`` is read as ``use_fp16``.
    """

    _score_keys = ("prompt",)

    def __init__(
        self,
        model_name_or_path: str,
        peft_path: Optional[str] = None,
        use_fp16: bool = False,
        use_bf16: bool = False,
        query_instruction_for_rerank: str = "A: ",
        query_instruction_format: str = "{}{}",
        passage_instruction_for_rerank: str = "B: ",
        passage_instruction_format: str = "{}{}",
        cache_dir: Optional[str] = None,
        trust_remote_code: bool = False,
        devices: Union[None, str, int, List[str], List[int]] = None,
        prompt: Optional[str] = None,
        batch_size: int = 128,
        query_max_length: Optional[int] = None,
        max_length: int = 512,
        normalize: bool = False,
        *,
        dtype: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        _no_peft(peft_path)
        self.peft_path = peft_path
        self.use_bf16 = use_bf16
        self.trust_remote_code = trust_remote_code
        self.prompt = prompt
        super().__init__(
            model_name_or_path, use_fp16 or use_bf16, query_instruction_for_rerank, query_instruction_format,
            passage_instruction_for_rerank, passage_instruction_format, devices, batch_size,
            query_max_length, max_length, normalize, cache_dir, dtype, kwargs,
        )


class LayerWiseFlagLLMReranker(_FlagBase):
    """A layer-wise LLM reranker (bge-reranker-v2-minicpm-layerwise):
    FlagEmbedding's ``LayerWiseFlagLLMReranker``. ``cutoff_layers`` picks
    the scoring layers (default: the last); several give one score list
    per layer. See ``FlagLLMReranker`` for the rest.
    """

    _score_keys = ("prompt", "cutoff_layers")

    def __init__(
        self,
        model_name_or_path: str,
        peft_path: Optional[str] = None,
        use_fp16: bool = False,
        use_bf16: bool = False,
        query_instruction_for_rerank: str = "A: ",
        query_instruction_format: str = "{}{}",
        passage_instruction_for_rerank: str = "B: ",
        passage_instruction_format: str = "{}{}",
        cache_dir: Optional[str] = None,
        trust_remote_code: bool = False,
        devices: Union[None, str, int, List[str], List[int]] = None,
        cutoff_layers: Optional[List[int]] = None,
        prompt: Optional[str] = None,
        batch_size: int = 128,
        query_max_length: Optional[int] = None,
        max_length: int = 512,
        normalize: bool = False,
        *,
        dtype: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        _no_peft(peft_path)
        self.peft_path = peft_path
        self.use_bf16 = use_bf16
        self.trust_remote_code = trust_remote_code
        self.cutoff_layers = cutoff_layers
        self.prompt = prompt
        super().__init__(
            model_name_or_path, use_fp16 or use_bf16, query_instruction_for_rerank, query_instruction_format,
            passage_instruction_for_rerank, passage_instruction_format, devices, batch_size,
            query_max_length, max_length, normalize, cache_dir, dtype, kwargs,
        )


def _no_peft(peft_path: Optional[str]) -> None:
    # A LoRA adapter left out would give the base model's scores silently.
    if peft_path is not None:
        from ._errors import InvalidInputError

        raise InvalidInputError(
            "peft_path: crossrank loads merged checkpoints; merge the adapter into the model first "
            "(`crossrank finetune` writes merged checkpoints; PEFT's merge_and_unload() does too)"
        )

"""Reading FlagEmbedding's and sentence-transformers' argument forms
(device names, pair lists and numpy arrays, instruction formats) into what
the core takes. The options themselves are the core's ``ScoreOptions``."""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple

# Torch's device names, which mean "the GPU" here: crossrank reaches GPUs
# through wgpu (Vulkan, Metal, DX12), not CUDA.
_TORCH_GPUS = ("cuda", "mps", "npu", "musa", "xpu", "hip")


def device_choice(devices: Any, warn: Callable[[str, str], None]) -> str:
    """FlagEmbedding's ``devices`` (None, a name, an int, a list of either)
    as crossrank's device choice: "auto", "cpu" or "wgpu"."""
    if devices is None:
        return "auto"
    if isinstance(devices, (list, tuple)):
        if not devices:
            raise ValueError("devices: an empty list")
        if len(devices) > 1:
            warn("devices:list", f"crossrank scores on one device per model; using {devices[0]!r} of {list(devices)!r}")
        devices = devices[0]
    if isinstance(devices, bool) or not isinstance(devices, (str, int)):
        raise ValueError("devices should be a string or an integer or a list of strings or a list of integers.")
    name = f"cuda:{devices}" if isinstance(devices, int) else devices.strip().lower()
    if name in ("auto", "cpu", "wgpu", "gpu"):
        return "wgpu" if name == "gpu" else name
    if name.split(":")[0] in _TORCH_GPUS:
        warn(f"devices:{name}", f"crossrank runs GPUs through wgpu (Vulkan/Metal/DX12): devices={devices!r} means the GPU ('wgpu')")
        return "wgpu"
    raise ValueError(f"unknown device {devices!r}: use 'auto', 'cpu', 'wgpu' (or torch's 'cuda', 'cuda:0', 'mps')")


def _text(x: Any, what: str) -> str:
    if isinstance(x, str):
        return str(x)  # numpy.str_ too
    if isinstance(x, bytes):
        return x.decode("utf-8")
    raise TypeError(f"{what} must be a string, not {type(x).__name__}")


def flag_pairs(sentence_pairs: Any) -> List[Tuple[str, str]]:
    """``[(query, passage), ...]``, one ``(query, passage)``, or a numpy
    array of shape (n, 2) (or (2,)) as a list of string pairs."""
    if hasattr(sentence_pairs, "tolist") and not isinstance(sentence_pairs, (list, tuple)):
        sentence_pairs = sentence_pairs.tolist()
    if isinstance(sentence_pairs, (str, bytes)):
        raise TypeError("sentence_pairs must be [(query, passage), ...] or one (query, passage), not a string")
    seq = list(sentence_pairs)
    if not seq:
        return []
    if isinstance(seq[0], (str, bytes)):
        seq = [seq]
    out = []
    for i, pair in enumerate(seq):
        if hasattr(pair, "tolist"):
            pair = pair.tolist()
        if isinstance(pair, (str, bytes)) or len(pair) != 2:
            raise ValueError(f"sentence_pairs[{i}] must be a (query, passage) pair")
        out.append((_text(pair[0], f"sentence_pairs[{i}][0]"), _text(pair[1], f"sentence_pairs[{i}][1]")))
    return out


def texts(values: Any, what: str) -> List[str]:
    """A list (or numpy array) of strings."""
    if hasattr(values, "tolist") and not isinstance(values, (list, tuple)):
        values = values.tolist()
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{what} must be a list of strings, not a string")
    return [_text(v, f"{what}[{i}]") for i, v in enumerate(values)]


def instruction(fmt: str, text: Optional[str]) -> Tuple[str, Optional[Callable[[str], str]]]:
    """FlagEmbedding's ``get_detailed_instruct(format, instruction, s)``
    as the core's prefix when the format is the default ``"{}{}"``
    (instruction + text), else as a function formatting the text itself
    (and no prefix). No instruction: nothing before the text."""
    if text is None:
        return "", None
    if "\\n" in fmt:
        fmt = fmt.replace("\\n", "\n")
    if fmt == "{}{}":
        return text, None
    return "", lambda s: fmt.format(text, s)

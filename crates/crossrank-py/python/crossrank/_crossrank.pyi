# Type stubs of the extension module (crates/crossrank-py/src/lib.rs).
from os import PathLike
from typing import List, Optional, Tuple, Union

__version__: str

class RerankerModel:
    device: str
    device_reason: str
    dtype: str
    architecture: str
    is_llm: bool
    max_input_tokens: int
    def __init__(self, spec: str, device: str = "auto", dtype: str = "f32", fp16_unless_cpu: bool = False) -> None: ...
    def compute_score(self, pairs: List[Tuple[str, str]], options: str) -> List[List[float]]: ...
    def rerank(self, query: str, docs: List[str], top_k: Optional[int], options: str) -> List[Tuple[int, float]]: ...

class EmbedderModel:
    device: str
    dtype: str
    def __init__(self, spec: str, device: str = "auto", dtype: str = "f32") -> None: ...
    def embed(
        self,
        texts: List[str],
        max_length: Optional[int] = None,
        pooling: Optional[str] = None,
        normalize: Optional[bool] = None,
        batch_size: Optional[int] = None,
        prompt: Optional[str] = None,
        prompt_name: Optional[str] = None,
    ) -> List[List[float]]: ...

def quantize(src: str, dst: Union[str, PathLike], dtype: str) -> str: ...
def cpu_int8_kernels() -> str: ...

"""Rerank a large candidate set on a Ray cluster with Ray Data: one
crossrank model per actor, batches of (query, passage) rows scored in
parallel, the result written as Parquet (or JSONL) beside the input.

    python examples/ray/rerank.py --model BAAI/bge-reranker-base --dtype q8 \
        --input candidates.jsonl --output scored/ --actors 8 [--address auto]

The input has one row per candidate: `qid`, `query`, `docid`, `passage`
(JSONL or Parquet; other columns are carried through). The output adds
`score`, written by the actors in parallel as Parquet files in a
directory; a `.jsonl` output (or `--trec run.txt`, a TREC run file for
`crossrank eval --first-stage run.txt` or trec_eval) is gathered on the
driver and also gets `rank` (1 = best within its query).

Nothing here is specific to one machine: on a cluster, every node needs
the crossrank wheel (`pip install crossrank`, or a runtime_env with it)
and the model (a Hub id is downloaded once per node into its Hugging Face
cache; a shared directory works too). The actors are stateless beyond
the model, so Ray may place, restart and scale them freely.
"""

from __future__ import annotations

import argparse
from typing import Any, Dict

import numpy as np


class RerankerActor:
    """A Ray Data callable class: loads the model once per actor, scores
    each batch of rows (a dict of numpy columns)."""

    def __init__(self, model: str, device: str = "cpu", dtype: str = "f32", max_length: int = 512, batch_size: int = 32):
        from crossrank import Reranker

        self.reranker = Reranker(model, device=device, dtype=dtype, max_length=max_length, batch_size=batch_size)

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        pairs = list(zip(batch["query"].tolist(), batch["passage"].tolist()))
        batch["score"] = self.reranker.compute_score(pairs, to_numpy=True)
        return batch


def rerank_dataset(ds: Any, model: str, *, actors: int = 2, batch_rows: int = 256, **load: Any) -> Any:
    """`ds` (a Ray Dataset of candidate rows) with a `score` column:
    `actors` model copies, `batch_rows` rows per call."""
    return ds.map_batches(
        RerankerActor,
        fn_constructor_kwargs={"model": model, **load},
        concurrency=actors,
        batch_size=batch_rows,
        batch_format="numpy",
    )


def add_ranks(df: Any) -> Any:
    """Per query, best first: a `rank` column (pandas)."""
    df = df.sort_values(["qid", "score"], ascending=[True, False], kind="stable")
    df["rank"] = df.groupby("qid").cumcount() + 1
    return df


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--input", required=True, help="JSONL or Parquet rows: qid, query, docid, passage")
    p.add_argument("--output", required=True, help="a directory for Parquet (or a .jsonl file)")
    p.add_argument("--actors", type=int, default=2)
    p.add_argument("--batch-rows", type=int, default=256)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="f32")
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--trec", help="also write a TREC run file here")
    p.add_argument("--address", help="a Ray cluster (default: start one here)")
    a = p.parse_args()

    import ray

    ray.init(address=a.address)
    read = ray.data.read_parquet if a.input.endswith(".parquet") else ray.data.read_json
    scored = rerank_dataset(read(a.input), a.model, actors=a.actors, batch_rows=a.batch_rows, device=a.device, dtype=a.dtype, max_length=a.max_length)
    if a.output.endswith(".jsonl") or a.trec:
        df = add_ranks(scored.to_pandas())
        if a.output.endswith(".jsonl"):
            df.to_json(a.output, orient="records", lines=True, force_ascii=False)
        else:
            df.to_parquet(a.output)
        if a.trec:
            with open(a.trec, "w") as f:
                for r in df.itertuples():
                    f.write(f"{r.qid} Q0 {r.docid} {r.rank} {r.score:.6f} crossrank\n")
    else:
        scored.write_parquet(a.output)


if __name__ == "__main__":
    main()

"""The Ray recipe (examples/ray/rerank.py) on a local Ray cluster: two
actors score a few thousand (query, passage) rows with Ray Data and get
the single-process scores. Skipped where Ray is not installed
(scripts/python-test.sh installs it with CROSSRANK_PY_RAY=1)."""

import importlib.util
import json
import pathlib
import time

import pytest

# "ray.data": a bare "ray" also imports /tmp/ray (Ray's session directory)
# as a namespace package when the tests run from /tmp.
pytest.importorskip("ray.data")
import ray  # noqa: E402

from crossrank import Reranker  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[3]
MODEL = str(ROOT / "tests" / "fixtures" / "xlmr-tiny")


def recipe():
    spec = importlib.util.spec_from_file_location("ray_rerank", ROOT / "examples" / "ray" / "rerank.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield
    ray.shutdown()


def test_two_actors_score_like_one_process(cluster, tmp_path):
    pairs = json.loads((ROOT / "tests" / "fixtures" / "xlmr-tiny" / "expected.json").read_text())["pairs"]
    rows = [
        {"qid": f"q{i % 50}", "query": f"{q} {i % 50}", "docid": f"d{i}", "passage": f"{p} ({i})"}
        for i, (q, p) in enumerate(pairs[j % len(pairs)] for j in range(3000))
    ]
    rr = recipe()
    start = time.perf_counter()
    scored = rr.rerank_dataset(ray.data.from_items(rows), MODEL, actors=2, batch_rows=200, device="cpu").to_pandas()
    took = time.perf_counter() - start
    want = Reranker(MODEL, device="cpu", batch_size=32).compute_score([(r["query"], r["passage"]) for r in rows])
    got = dict(zip(scored["docid"], scored["score"]))
    assert len(got) == len(rows)
    err = max(abs(float(got[r["docid"]]) - w) for r, w in zip(rows, want))
    print(f"ray: {len(rows)} pairs, 2 actors, {took:.1f} s ({len(rows) / took:.0f} pairs/s incl. startup); max abs diff {err:.1e}")
    assert err <= 1e-5
    ranked = rr.add_ranks(scored)
    top = ranked[ranked["rank"] == 1]
    assert len(top) == 50
    for _, r in top.iterrows():
        assert r["score"] == scored[scored["qid"] == r["qid"]]["score"].max()

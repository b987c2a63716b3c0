"""Tables and score agreement for benches/gpu/run.sh: one markdown table per
workload (pairs/s and the ratio to PyTorch CUDA fp16), and each system's
largest |score - reference| over the same pairs, the reference being crossrank
CPU f32 where it ran, else PyTorch fp32."""
import json
import sys
from pathlib import Path

w = Path(sys.argv[1])
for work in ("short", "big", "long"):
    rows = []
    for f in (f"crossrank-{work}.json", f"crossrank-dequant-{work}.json", f"crossrank-cpu-{work}.json", f"peer-{work}.json", f"ort-{work}.json"):
        if (w / f).exists():
            more = json.load(open(w / f))
            if "dequant" in f:  # the same system name, the old GPU q8 path
                for r in more:
                    r["system"] += " (per-pass dequantization)"
            rows += more
    if not rows:
        continue
    ref = next((r for r in rows if r["system"] == "crossrank cpu f32"), None) or next(
        (r for r in rows if "fp32" in r["system"] and "ONNX" not in r["system"]), None
    )
    peer = next((r for r in rows if "fp16" in r["system"] and "transformers" in r["system"]), None)
    n = len(rows[0].get("scores", []))
    print(f"\n### {work}: {n} pairs (reference for |diff|: {ref['system'] if ref else 'none'})\n")
    print("| system | load s | first call s | pairs/s | vs PyTorch CUDA fp16 | max abs diff |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        d = ""
        if ref and r.get("scores") and len(r["scores"]) == len(ref["scores"]):
            d = f"{max(abs(a - b) for a, b in zip(r['scores'], ref['scores'])):.2e}"
        ratio = f"{r['pairs_per_s'] / peer['pairs_per_s']:.2f}x" if peer else ""
        load = f"{r['load_s']:.2f}" if "load_s" in r else ""
        print(f"| {r['system']} | {load} | {r['first_s']:.2f} | {r['pairs_per_s']:.1f} | {ratio} | {d} |")

"""Peak memory of loading GPT-2 weights from the Hugging Face layout.

    python benchmarks/bench_pretrained_load.py [--size 355M] [--repeats 3]

Writes a random GPT-2 of the given size (float32, tied head) as config.json +
model.safetensors into a temp folder, then loads it with
`gptcore.load_weights` in fresh subprocesses. Each child reports
its RSS after importing torch and warming up torch's lazy imports (baseline), its peak RSS (VmHWM) after loading,
and the time taken. The figure of merit is (peak - baseline) / weights bytes:
the issue's target is <= ~1.5x; 1.0x means the weights are held exactly once.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from child import run_json

CHILD = r"""
import json, sys, time
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
import torch
from gptcore.settings.model import GPTConfig
from gptcore.model.gpt import GPTModel
from gptcore.weights.loaders import load_weights
cold = status("VmRSS")
# Warm up lazy imports (torch's first init call pulls in torch._dynamo, ~100+ MB)
# so the baseline holds the code and the difference is the weights.
with torch.device("meta"):
    GPTModel(GPTConfig(context_length=8, emb_dim=8, n_heads=2, n_layers=1))
base = status("VmRSS")
t = time.perf_counter()
model = load_weights(sys.argv[1])
elapsed = time.perf_counter() - t
n = sum(p.numel() for p in model.parameters())
print(json.dumps({"cold": cold, "base": base, "peak": status("VmHWM"), "after": status("VmRSS"),
                  "seconds": elapsed, "params": n}))
"""


def write_random(size: str, folder: Path) -> int:
    """Random weights with the size's shapes, written tensor by tensor; returns bytes."""
    import torch
    from safetensors.torch import save_file

    from gptcore.weights.gpt2 import preset_for
    from gptcore.weights.hf_export import hf_config_dict
    from gptcore.weights.layouts import expected_shapes

    config = preset_for(size)
    tensors = {}
    for name, shape in expected_shapes(config).items():
        tensors[name] = torch.empty(shape).normal_(0, 0.02)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(hf_config_dict(config)))
    return sum(t.numel() * 4 for t in tensors.values())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="355M")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        weights = write_random(args.size, folder)
        rows = [run_json(CHILD, folder) for _ in range(args.repeats)]
    ratios = [(r["peak"] - r["base"]) / weights for r in rows]
    print(f"GPT-2 {args.size}: {rows[0]['params']:,} parameters, {weights / 1e9:.2f} GB float32")
    for r, ratio in zip(rows, ratios, strict=True):
        print(
            f"  after imports {r['cold'] / 1e9:.2f} GB, baseline {r['base'] / 1e9:.2f} GB  peak {r['peak'] / 1e9:.2f} GB  "
            f"(peak - baseline) / weights = {ratio:.2f}x  load {r['seconds']:.1f} s"
        )
    print(
        f"median ratio {statistics.median(ratios):.2f}x, "
        f"median load {statistics.median(r['seconds'] for r in rows):.1f} s"
    )


if __name__ == "__main__":
    main()

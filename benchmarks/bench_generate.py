"""Generation speed: gpt-tui's KV-cached decoding vs the book and transformers.

    python benchmarks/bench_generate.py [--tokens 200] [--runs 3] [--modes fp32,bf16,int8]

All in one command, so the ratios compare like with like on a shared machine:
  * the book's method: `../shared/bench/book_style.py generate` (the whole
    context recomputed for every token), run as a subprocess once per round;
  * transformers' `GPT2LMHeadModel.generate` (greedy, its KV cache) holding the
    same weights as our model (exported with gptcore.pretrained.to_hf_state_dict);
  * gpt-tui's `generate` at each precision mode.
Model: the 124M GPT-2 shape (qkv bias, tied head) at context 256 with seeded
random weights (speed does not depend on the weights); batch 1, greedy, prompt
"Every effort moves you", --tokens new tokens. Each round times every engine
once, back to back; speeds are medians over rounds and ratios are medians of
the per-round ratios (the load on a shared machine drifts between rounds).
For each precision the distance from fp32 is printed: max |logit difference|
and next-token agreement over a fixed prompt set, and how many of the
benchmark's greedy tokens match fp32's.
Targets (2-core CPU): >= 6x the book and >= 1.5x transformers in the fastest
mode whose greedy tokens match fp32's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
from child import run_script_json

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO.parent / "shared" / "bench" / "book_style.py"
PROMPT = "Every effort moves you"
DISTANCE_PROMPTS = [
    "Every effort moves you",
    "The quick brown fox jumps over the lazy dog.",
    "In the beginning was the word",
    "I HAD always thought Jack Gisburn rather a cheap genius",
    "def fibonacci(n):\n    return",
    "Le chat est sur la table, et",
    "東京は日本の首都です。",
    "Numbers: 1, 2, 3, 5, 8, 13,",
]


def book_runs(tokens: int, runs: int, context: int, threads: int | None) -> list[float]:
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)  # the same thread count as the other engines
    args = ("generate", "--tokens", tokens, "--context", context)
    return [
        float(run_script_json(BOOK, *args, env=env)["generate_tokens_per_s"]) for _ in range(runs)
    ]


def build_models(context: int, modes: list[str]) -> dict:
    from gptcore.model.gpt import GPTModel
    from gptcore.model.inference import prepare_for_inference
    from gptcore.settings.model import GPTConfig

    config = GPTConfig(context_length=context, drop_rate=0.0, qkv_bias=True, tie_embeddings=True)
    models = {}
    for mode in modes:
        torch.manual_seed(123)  # the same random weights for every mode
        models[mode] = prepare_for_inference(GPTModel(config), mode)
    return models


def build_hf(model):
    from transformers import GPT2Config, GPT2LMHeadModel

    from gptcore.weights.hf_export import hf_config_dict, to_hf_state_dict

    cfg = {k: v for k, v in hf_config_dict(model.config).items() if k != "architectures"}
    hf = GPT2LMHeadModel(GPT2Config(**cfg)).eval()
    missing, unexpected = hf.load_state_dict(to_hf_state_dict(model), strict=False)
    # Only the causal-mask buffers some transformers versions keep may be missing.
    assert not unexpected and all("attn.bias" in k or "masked_bias" in k for k in missing), (
        missing,
        unexpected,
    )
    return hf


def time_ours(model, tokens: int) -> tuple[float, list[int]]:
    from gptcore.sampling.stream import generate

    t = time.perf_counter()
    result = generate(model, PROMPT, max_new_tokens=tokens, eos_id=None)
    elapsed = time.perf_counter() - t
    return tokens / elapsed, result.samples[0].token_ids


def time_hf(hf, tokens: int) -> tuple[float, list[int]]:
    from gptcore.model.tokenizer import encode

    ids = torch.tensor([encode(PROMPT)])
    t = time.perf_counter()
    with torch.inference_mode():
        out = hf.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=tokens,
            min_new_tokens=tokens,
            do_sample=False,
            pad_token_id=50256,
        )
    elapsed = time.perf_counter() - t
    return tokens / elapsed, out[0, ids.shape[1] :].tolist()


def distance(models: dict) -> dict[str, dict[str, float]]:
    """Per mode: max |logit - fp32 logit| and next-token agreement on DISTANCE_PROMPTS."""
    from gptcore.model.tokenizer import encode

    ref = models["fp32"]
    out = {}
    with torch.inference_mode():
        base = [ref(torch.tensor([encode(p)]))[0, -1].float() for p in DISTANCE_PROMPTS]
        for mode, model in models.items():
            diffs, agree = [], 0
            for p, b in zip(DISTANCE_PROMPTS, base, strict=True):
                logits = model(torch.tensor([encode(p)]))[0, -1].float()
                diffs.append((logits - b).abs().max().item())
                agree += int(logits.argmax() == b.argmax())
            out[mode] = {
                "max_abs_logit_diff": max(diffs),
                "next_token_agreement": agree / len(base),
            }
    return out


def matching_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def median_ratio(a: list[float], b: list[float]) -> float:
    """Median of per-round ratios a[i] / b[i]: robust to load drifting between rounds."""
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument(
        "--runs", type=int, default=3, help="rounds; each times every engine once, back to back"
    )
    parser.add_argument("--context", type=int, default=256)
    parser.add_argument(
        "--modes", default="fp32,bf16,int8", help="precisions to measure (fp32 is always included)"
    )
    parser.add_argument("--no-book", action="store_true", help="skip the book's method (slow)")
    parser.add_argument("--no-hf", action="store_true", help="skip transformers")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads for every engine, the book's subprocess included (default: torch's)",
    )
    parser.add_argument("--json", action="store_true", help="also print one JSON object at the end")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    modes = ["fp32"] + [m for m in args.modes.split(",") if m and m != "fp32"]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"cpu capability {torch.backends.cpu.get_cpu_capability()}",
        flush=True,
    )
    models = build_models(args.context, modes)
    hf = None if args.no_hf else build_hf(models["fp32"])

    engines: dict[str, object] = {f"gpt-tui {m}": models[m] for m in modes}
    if hf is not None:
        engines["transformers fp32"] = hf
    speeds: dict[str, list[float]] = {name: [] for name in engines}
    tokens: dict[str, list[int]] = {}
    for name, engine in engines.items():  # a short warm-up
        fn = time_hf if name.startswith("transformers") else time_ours
        fn(engine, 8)
    book: list[float] = []
    for r in range(args.runs):
        if not args.no_book:
            book += book_runs(args.tokens, 1, args.context, args.threads)
        for name, engine in engines.items():
            fn = time_hf if name.startswith("transformers") else time_ours
            speed, ids = fn(engine, args.tokens)
            speeds[name].append(speed)
            tokens.setdefault(name, ids)  # greedy: every round yields the same tokens
        line = ", ".join(f"{n} {v[-1]:.2f}" for n, v in speeds.items())
        print(f"round {r + 1}: " + (f"book {book[-1]:.2f}, " if book else "") + line, flush=True)
    dist = distance(models)

    med = {name: statistics.median(v) for name, v in speeds.items()}
    ref_tokens = tokens["gpt-tui fp32"]
    hf_name = "transformers fp32"
    print(
        f"\n{args.tokens} new tokens, batch 1, context {args.context}, {args.runs} rounds; "
        "tok/s = median; x book / x hf = median of per-round ratios"
    )
    print(f"{'engine':<20} {'tok/s':>8} {'x book':>7} {'x hf':>6} {'greedy = fp32':>14}")
    if book:
        print(f"{'book (recompute)':<20} {statistics.median(book):>8.2f}")
    rows = {}
    for name in engines:
        same = matching_prefix(tokens[name], ref_tokens)
        xb = median_ratio(speeds[name], book) if book else None
        xh = median_ratio(speeds[name], speeds[hf_name]) if hf is not None else None
        rows[name] = {
            "tokens_per_s": med[name],
            "runs": speeds[name],
            "x_book": xb,
            "x_transformers": xh,
            "greedy_tokens_matching_fp32": same,
        }
        print(
            f"{name:<20} {med[name]:>8.2f} {f'{xb:.2f}' if xb else '-':>7} "
            f"{f'{xh:.2f}' if xh else '-':>6} {same:>8}/{len(ref_tokens)}"
        )
    print("\ndistance from fp32 over", len(DISTANCE_PROMPTS), "prompts (last-position logits):")
    for mode, d in dist.items():
        print(
            f"  {mode:<5} max |logit diff| {d['max_abs_logit_diff']:.4g}, "
            f"next-token agreement {d['next_token_agreement']:.0%}"
        )
    exact = [
        n
        for n in engines
        if n.startswith("gpt-tui") and rows[n]["greedy_tokens_matching_fp32"] == len(ref_tokens)
    ]
    best = max(exact, key=lambda n: med[n])
    summary = [f"{med[best]:.2f} tok/s"]
    if book:
        summary.append(f"{rows[best]['x_book']:.2f}x the book (target 6x)")
    if hf is not None:
        summary.append(f"{rows[best]['x_transformers']:.2f}x transformers (target 1.5x)")
    print(f"\nfastest mode whose greedy tokens match fp32: {best}: " + ", ".join(summary))
    fp32 = rows["gpt-tui fp32"]
    print(
        "gpt-tui fp32: "
        + ", ".join(
            s
            for s in (
                f"{fp32['x_book']:.2f}x the book" if book else "",
                f"{fp32['x_transformers']:.2f}x transformers" if hf is not None else "",
            )
            if s
        )
    )
    if args.json:
        print(json.dumps({"book": book, "engines": rows, "distance": dist, "fastest_exact": best}))


if __name__ == "__main__":
    main()

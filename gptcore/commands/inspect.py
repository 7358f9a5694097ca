"""`gpt-tui inspect`: the next-token distribution, temperatures and a sampling lab."""

from __future__ import annotations

import argparse
import json

from gptcore.settings.declare import add_flags, flag_texts, flags_of
from gptcore.settings.sampling import GenerationSettings, InspectSettings

from .flags import SAMPLER_FLAGS, add_sampler_arguments, sampler_text
from .model_args import add_model_arguments, load_from_args

BAR = 24


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect",
        help="show the next-token distribution before/after temperature, top-k, top-p",
        description="Run the model once on the prompt and show its top next-token candidates, "
        "the distribution after the sampling controls, a temperature comparison, and N draws.",
    )
    add_model_arguments(p, default_preset="book-124m")
    p.add_argument(
        "--toy",
        action="store_true",
        help="use the chapter's 9-word toy vocabulary and logits instead of a model",
    )
    p.add_argument(
        "--prompt", default="Every effort moves you", help="the text before the next token"
    )
    # Sampling flags stay text: gptcore.sampling.from_text parses and checks them, by
    # the same declarations (and field names) as the inspector screen and `generate`.
    defaults = {"temperature": InspectSettings().sampling.temperature}
    add_flags(p, GenerationSettings, FILTER, defaults)
    add_sampler_arguments(p)
    p.add_argument("--top", type=int, default=20, help="how many candidates to list (default 20)")
    add_flags(p, InspectSettings, LAB)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--png",
        metavar="OUT.png",
        help="also save the temperature comparison as a PNG, like the book's figure "
        "(--toy: the whole toy vocabulary; else the top 10 candidates); needs gpt-tui[plot]",
    )
    p.set_defaults(func=run)


def _bar(p: float, width: int = BAR) -> str:
    return "#" * round(p * width)


# The settings this command takes as one flag each (the samplers come after).
FILTER = ["temperature", "top_k", "top_p"]
LAB = ["temperatures", "draws", "seed"]
# The flag behind each setting, for error messages.
FLAGS = {
    **flags_of(GenerationSettings, FILTER),
    **flags_of(InspectSettings, LAB),
    **SAMPLER_FLAGS,
}


def run(args: argparse.Namespace) -> int:
    import torch

    from gptcore.errors import ConfigError, GenerationError
    from gptcore.model.tokenizer import VOCAB_SIZE, encode, get_tokenizer
    from gptcore.sampling.from_text import inspect_settings_from_text
    from gptcore.sampling.nexttoken import (
        TOY_LOGITS,
        TOY_VOCAB,
        chain_distributions,
        covered,
        distribution,
        next_token_logits,
        sample_counts,
        temperature_table,
        top_candidates,
    )

    from .flags import name_flags

    if args.top <= 0:
        raise ConfigError(f"--top must be positive, got {args.top}")
    text = {**flag_texts(args, [*FILTER, *LAB]), **sampler_text(args)}
    lists = {"logit_bias": args.logit_bias, "ban": args.ban}
    vocab = len(TOY_VOCAB) if args.toy else VOCAB_SIZE
    try:  # before the (possibly slow) model load
        controls = inspect_settings_from_text(text, vocab, **lists)
    except GenerationError as exc:
        raise name_flags(exc, FLAGS) from None
    if args.toy:
        logits = torch.tensor(TOY_LOGITS)
        history: list[int] = []

        def label(i: int) -> str:
            return TOY_VOCAB[i]

        source = "the chapter's toy vocabulary"
    else:
        loaded = load_from_args(args)
        model = loaded.model
        if model.config.vocab_size != vocab:
            try:
                controls = inspect_settings_from_text(text, model.config.vocab_size, **lists)
            except GenerationError as exc:
                raise name_flags(exc, FLAGS) from None
        ids = encode(args.prompt) if args.prompt else [get_tokenizer().eot_token]
        history = ids[-model.config.context_length :]
        logits = next_token_logits(model, ids)
        enc = get_tokenizer()

        def label(i: int) -> str:
            return repr(enc.decode_single_token_bytes(i).decode("utf-8", errors="backslashreplace"))

        source = loaded.label
    temps = controls.temperatures
    chain = controls.sampling
    dist = distribution(logits, chain=chain, history=history)
    stages = chain_distributions(logits, chain, history)
    cands = top_candidates(dist, args.top)
    table = temperature_table(logits, temps, [c.id for c in cands])
    counts = sample_counts(dist.probs, controls.draws, controls.seed) if controls.draws else {}
    if args.png:  # before any output: a failure leaves one error line, no half report
        from gptcore.sampling.figures import save_temperature_figure

        fig_ids = list(range(len(TOY_VOCAB))) if args.toy else [c.id for c in cands[:10]]
        save_temperature_figure(
            args.png, [label(i) for i in fig_ids], temperature_table(logits, temps, fig_ids)
        )
    if args.json:
        print(
            json.dumps(
                {
                    "candidates": [
                        {
                            "id": c.id,
                            "token": label(c.id),
                            "logit": c.logit,
                            "probability": c.raw_prob,
                            "sampling_probability": c.prob,
                            "masked": not c.kept,
                            "count": counts.get(c.id, 0),
                        }
                        for c in cands
                    ],
                    "covered": covered(cands),
                    "entropy": dist.raw_entropy,
                    "sampling_entropy": dist.entropy,
                    "temperatures": {str(t): v for t, v in table.items()},
                    "samples": controls.draws,
                    "stages": [
                        {
                            "stage": name,
                            "top": [
                                {"id": int(i), "token": label(int(i)), "probability": float(q)}
                                for q, i in zip(*torch.topk(probs, 5), strict=True)
                            ],
                        }
                        for name, probs in stages
                    ],
                }
            )
        )
        return 0
    settings = (
        f"temperature {controls.sampling.temperature:g}, top-k {controls.sampling.top_k or 'off'}, "
        f"top-p {controls.sampling.top_p or 'off'}"
    )
    print(f"{source}; prompt {args.prompt!r}" if not args.toy else source)
    print(f"{'token':<18} {'id':>6} {'logit':>8}  {'probability':<{BAR + 8}} after {settings}")
    for c in cands:
        after = "masked" if not c.kept else f"{c.prob:7.2%} {_bar(c.prob)}"
        print(
            f"{label(c.id)[:18]:<18} {c.id:>6} {c.logit:8.2f}  {c.raw_prob:7.2%} {_bar(c.raw_prob):<{BAR}} {after}"
        )
    print(
        f"these {len(cands)} cover {covered(cands):.2%}; entropy {dist.raw_entropy:.3f} nats, after the controls {dist.entropy:.3f}"
    )
    print("\nafter each stage of the chain (top 5):")
    for name, probs in stages:
        cells = ", ".join(
            f"{label(int(i))[:12]} {float(q):.1%}"
            for q, i in zip(*torch.topk(probs, 5), strict=True)
        )
        print(f"{name:<19} {cells}")
    print("\nprobability by temperature: " + ", ".join(f"T={t:g}" for t in temps))
    for row, c in enumerate(cands[:10]):
        cells = "  ".join(
            f"{table[t][row]:7.2%} {_bar(table[t][row], BAR // 2):<{BAR // 2}}" for t in temps
        )
        print(f"{label(c.id)[:18]:<18} {cells}")
    if counts:
        print(f"\n{controls.draws} draws (seed {controls.seed}):")
        for token_id, n in sorted(counts.items(), key=lambda kv: -kv[1]):
            print(
                f"{n:>6} x {label(token_id)[:24]:<24} probability {float(dist.probs[token_id]):.2%}"
            )
    if args.png:
        print(f"\nsaved the temperature comparison to {args.png}")
    return 0

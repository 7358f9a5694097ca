"""`gpt-tui inspect`: the next-token distribution, temperatures and a sampling lab."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from gptcore.errors import ConfigError, GenerationError
from gptcore.settings.declare import add_flags, flag_texts, flags_of
from gptcore.settings.sampling import GenerationSettings, InspectSettings
from gptcore.util.bars import bar, percent

from .flags import SAMPLER_FLAGS, add_sampler_arguments, name_flags, sampler_text
from .model_args import add_model_arguments, load_from_args

if TYPE_CHECKING:
    from gptcore.sampling.analysis import NextTokenAnalysis, Vocabulary

BAR = 24  # cells of a probability bar
FIGURE_TOKENS = 10  # candidates in the --png figure (a model's; --toy: its whole vocabulary)


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
    from gptcore.sampling.analysis import TOY, analyze_next_token, gpt2_vocabulary, toy_logits
    from gptcore.sampling.chat import next_turn
    from gptcore.sampling.from_text import inspect_settings_from_text
    from gptcore.sampling.nexttoken import next_token_logits

    if args.top <= 0:
        raise ConfigError(f"--top must be positive, got {args.top}")
    text = {**flag_texts(args, [*FILTER, *LAB]), **sampler_text(args)}
    lists = {"logit_bias": args.logit_bias, "ban": args.ban}

    def parse(vocabulary: Vocabulary) -> InspectSettings:  # bans given as text: its tokens
        try:
            return inspect_settings_from_text(
                text, vocabulary.size, **lists, encode_text=vocabulary.encode
            )
        except GenerationError as exc:
            raise name_flags(exc, FLAGS) from None

    vocabulary = TOY if args.toy else gpt2_vocabulary()
    controls = parse(vocabulary)  # before the (possibly slow) model load
    if args.toy:
        logits, history = toy_logits(), ()
        source = "the chapter's toy vocabulary"
    else:
        loaded = load_from_args(args)
        model = loaded.model
        if model.config.vocab_size != vocabulary.size:
            vocabulary = gpt2_vocabulary(model.config.vocab_size)
            controls = parse(vocabulary)
        # What `generate` would read: the prompt's last context_length tokens.
        history = next_turn(args.prompt, controls.sampling, model.config.context_length).context
        logits = next_token_logits(model, history)
        source = f"{loaded.label}; prompt {args.prompt!r}"
    analysis = analyze_next_token(logits, controls, history, vocabulary, args.top).drawn()
    if args.png:  # before any output: a failure leaves one error line, no half report
        _save_figure(args.png, analysis)
    if args.json:
        print(json.dumps(_as_json(analysis)))
        return 0
    print(_as_text(analysis, source))
    if args.png:
        print(f"\nsaved the temperature comparison to {args.png}")
    return 0


def _save_figure(path: str, analysis: NextTokenAnalysis) -> None:
    """The book's grouped bars: the toy vocabulary in its order, else the top candidates."""
    from gptcore.sampling.figures import save_temperature_figure, save_toy_temperature_figure

    temperatures = analysis.controls.temperatures
    if analysis.vocabulary.toy:
        save_toy_temperature_figure(path, temperatures)
        return
    rows = analysis.candidates[:FIGURE_TOKENS]
    table = {t: probs[: len(rows)] for t, probs in analysis.temperatures.items()}
    save_temperature_figure(path, [analysis.label(c.id) for c in rows], table)


def _as_json(a: NextTokenAnalysis) -> dict[str, Any]:
    """The analysis as one JSON object (tokens as their text: tokenview.token_text)."""
    counts = a.counts or {}
    text = a.vocabulary.text
    return {
        "candidates": [
            {
                "id": c.id,
                "token": text(c.id),
                "logit": c.logit,
                "probability": c.raw_prob,
                "sampling_probability": c.prob,
                "masked": not c.kept,
                "count": counts.get(c.id, 0),
            }
            for c in a.candidates
        ],
        "covered": a.covered,
        "entropy": a.distribution.raw_entropy,
        "sampling_entropy": a.distribution.entropy,
        "temperatures": {str(t): list(v) for t, v in a.temperatures.items()},
        "samples": a.controls.draws,
        "stages": [
            {
                "stage": stage.name,
                "top": [{"id": i, "token": text(i), "probability": q} for i, q in stage.top],
            }
            for stage in a.stages
        ],
    }


def _as_text(a: NextTokenAnalysis, source: str) -> str:
    """The report: candidates with bars, stages, temperatures, the lab's counts."""
    s = a.controls.sampling
    settings = f"temperature {s.temperature:g}, top-k {s.top_k or 'off'}, top-p {s.top_p or 'off'}"
    lines = [source]
    lines.append(
        f"{'token':<18} {'id':>6} {'logit':>8}  {'probability':<{BAR + 8}} after {settings}"
    )
    for c in a.candidates:
        after = "masked" if not c.kept else f"{percent(c.prob)} {bar(c.prob, BAR).rstrip()}"
        lines.append(
            f"{a.label(c.id, 18):<18} {c.id:>6} {c.logit:8.2f}  "
            f"{percent(c.raw_prob)} {bar(c.raw_prob, BAR)} {after}"
        )
    d = a.distribution
    lines.append(
        f"these {len(a.candidates)} cover {a.covered:.2%}; entropy {d.raw_entropy:.3f} nats, "
        f"after the controls {d.entropy:.3f}"
    )
    lines.append("\nafter each stage of the chain (top 5):")
    for stage in a.stages:
        cells = ", ".join(f"{a.label(i, 12)} {q:.1%}" for i, q in stage.top)
        lines.append(f"{stage.name:<19} {cells}")
    temps = a.controls.temperatures
    lines.append("\nprobability by temperature: " + ", ".join(f"T={t:g}" for t in temps))
    for row, c in enumerate(a.candidates[:FIGURE_TOKENS]):
        cells = "  ".join(
            f"{percent(a.temperatures[t][row])} {bar(a.temperatures[t][row], BAR // 2)}"
            for t in temps
        )
        lines.append(f"{a.label(c.id, 18):<18} {cells}")
    if a.counts:
        lines.append(f"\n{a.controls.draws} draws (seed {a.controls.seed}):")
        for token_id, n in sorted(a.counts.items(), key=lambda kv: -kv[1]):
            lines.append(
                f"{n:>6} x {a.label(token_id, 24):<24} probability {percent(a.probability(token_id)).strip()}"
            )
    return "\n".join(lines)

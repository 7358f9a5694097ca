"""`gpt-tui generate`: sample text from a checkpoint, GPT-2 weights or a fresh preset."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gptcore.errors import FieldError, GenerationError
from gptcore.settings.declare import add_flags, flag_texts, flags_of
from gptcore.settings.model import InferenceSettings
from gptcore.settings.sampling import GenerationSettings

from .flags import SAMPLER_FLAGS, add_device_flag, add_sampler_arguments, name_flags, sampler_text
from .model_args import add_model_arguments, load_from_args
from .stdin import read_stdin_text

if TYPE_CHECKING:
    from gptcore.sampling.stream import Sample


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="generate text from a model (streams in a terminal)",
        description="Generate a continuation of a prompt with a KV cache. Greedy by default "
        "(--temperature 0); --temperature/--top-k/--top-p sample as the book does. The prompt "
        "comes from --prompt, --prompt-file or standard input; an empty prompt starts from "
        "<|endoftext|>.",
    )
    add_model_arguments(p)
    # Sampling flags stay text: gptcore.sampling.from_text parses and checks them, by
    # the same declarations (and with the same field names in errors) as the app's controls.
    prompt = p.add_mutually_exclusive_group()
    prompt.add_argument("--prompt", help="the prompt text")
    prompt.add_argument("--prompt-file", metavar="PATH", help="read the prompt from a UTF-8 file")
    add_flags(p, GenerationSettings, SAMPLING)
    add_sampler_arguments(p)
    p.add_argument(
        "--no-eos", action="store_true", help="do not stop at <|endoftext|> (the default stop)"
    )
    add_flags(p, GenerationSettings, ["stop"])
    add_flags(p, InferenceSettings, ["precision"])
    p.set_defaults(precision=InferenceSettings.precision)
    add_device_flag(p)
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="CPU threads for torch (default: torch's choice; one sample decodes one token "
        "at a time, so 1 can be faster on a busy machine)",
    )
    p.add_argument(
        "--stream",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="print text as it is generated (default: on when stdout is a terminal)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help='print {"prompt": ..., "samples": [{"text", "token_ids", "finish_reason"}]}',
    )
    p.add_argument(
        "--logprobs",
        metavar="K",
        help="token confidence, K alternatives per token (1-20): with --json each sample "
        "gains 'tokens' [{id, text, logprob, raw_logprob, top}]; without, a table follows "
        "the text",
    )
    p.set_defaults(func=run)


def read_prompt(args: argparse.Namespace) -> str:

    if args.prompt is not None:
        return args.prompt
    if args.prompt_file is not None:
        path = Path(args.prompt_file)
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise GenerationError(f"prompt file {path} does not exist") from None
        except UnicodeDecodeError:
            raise GenerationError(f"prompt file {path} is not UTF-8 text") from None
        except OSError as exc:
            raise GenerationError(f"cannot read prompt file {path}: {exc.strerror}") from None
    if sys.stdin is not None and not sys.stdin.isatty():
        return read_stdin_text()
    return ""


# The sampling settings this command takes as one flag each (the samplers come after).
SAMPLING = [
    "max_new_tokens",
    "temperature",
    "top_k",
    "top_p",
    "seed",
    "num_samples",
    "context_keep",
]
# The flag behind each sampling setting, for error messages.
FLAGS = {
    **flags_of(GenerationSettings, SAMPLING),
    **flags_of(InferenceSettings, ["precision"]),
    **SAMPLER_FLAGS,
}


def sampling_text(args: argparse.Namespace) -> dict[str, str]:
    """The sampling flags given, as typed, by setting name (absent: the default)."""
    return {**flag_texts(args, SAMPLING), **sampler_text(args)}


def parse_logprobs(text: str | None) -> int | None:
    """--logprobs K: 1..MAX_LOGPROBS alternatives per token (None: not asked for)."""
    from gptcore.sampling.stream import MAX_LOGPROBS

    if text is None:
        return None
    try:
        k = int(text)
    except ValueError:
        k = None
    if k is None or not 1 <= k <= MAX_LOGPROBS:
        message = f"--logprobs: must be an integer in [1, {MAX_LOGPROBS}], got {text!r}"
        raise GenerationError(FieldError("logprobs", message))
    return k


def confidence_table(sample: Sample, index: int | None) -> str:
    """One line per generated token: its probability as drawn (after the settings),
    under the raw model, then the top alternatives (raw probability); tokens by
    their label (gptcore.model.tokenview.token_label)."""
    title = "token confidence" + (f" (sample {index + 1})" if index is not None else "")
    lines = [f"--- {title}: p drawn · p raw · token · alternatives (p raw) ---"]
    for n, record in enumerate(sample.tokens or [], 1):
        t = record.token
        alts = ", ".join(f"{c.label} {c.raw_prob:.3f}" for c in record.top if c.id != t.id)
        lines.append(f"{n:4d} {t.prob:.3f} {t.raw_prob:.3f} {t.label:<14} {alts}")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    from gptcore.sampling.from_text import settings_from_text
    from gptcore.sampling.stream import TextStream

    # Checked before the (possibly slow) model load; TextStream checks the limits
    # that depend on the model (top-k vs its vocabulary, context_keep vs its window).
    try:
        settings = settings_from_text(
            sampling_text(args),
            stop_at_eos=not args.no_eos,
            stop=args.stop,
            logit_bias=args.logit_bias,
            ban=args.ban,
        )
    except GenerationError as exc:
        raise name_flags(exc, FLAGS) from None
    if args.threads is not None:
        # Far more threads than cores only slows torch down; 100000 crashes libgomp.
        most = 4 * (os.cpu_count() or 1)
        if not 1 <= args.threads <= most:
            message = f"--threads must be in [1, {most}] (4 per CPU core), got {args.threads}"
            raise GenerationError(FieldError("threads", message))
        import torch

        torch.set_num_threads(args.threads)
    logprobs = parse_logprobs(args.logprobs)
    prompt = read_prompt(args)
    # load_spec checks the precision against the device before loading.
    try:
        model = load_from_args(args, args.device, args.precision).model
        text_stream = TextStream(model, prompt, settings, logprobs=logprobs)
    except GenerationError as exc:
        raise name_flags(exc, FLAGS) from None

    live = args.stream if args.stream is not None else sys.stdout.isatty()
    if args.json:
        live = False
    out = sys.stdout
    if live:
        out.write(prompt)
        out.flush()
    for delta in text_stream:
        if live and delta.sample == 0:
            out.write(delta.text)
            out.flush()
    result = text_stream.result
    assert result is not None
    if result.notice:
        print(f"gpt-tui: note: {result.notice}", file=sys.stderr)
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
        return 0
    for i, sample in enumerate(result.samples):
        if live and i == 0:
            out.write("\n")
            continue
        if len(result.samples) > 1:
            out.write(f"--- sample {i + 1} ---\n")
        out.write(prompt + sample.text + "\n")
    if logprobs is not None:  # one table per sample, after the text
        for i, sample in enumerate(result.samples):
            out.write(confidence_table(sample, i if len(result.samples) > 1 else None))
    out.flush()
    if live:
        print(
            f"gpt-tui: {result.new_tokens} tokens in {result.elapsed_s:.2f} s "
            f"({result.tokens_per_s:.1f} tokens/s)",
            file=sys.stderr,
        )
    return 0

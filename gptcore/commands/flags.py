"""Engine errors told in the words of the command line: a setting's flag, not its field."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # gptcore.generate imports torch: not while the parser is built
    from gptcore.errors import GenerationError


def name_flags(error: GenerationError, flags: Mapping[str, str]) -> GenerationError:
    """`error` with each field's message led by the flag that sets it
    (e.g. "--samples: draws must be ..."); the fields stay as they are."""
    from gptcore.errors import FieldError, GenerationError

    def told(item: FieldError | str) -> FieldError | str:
        if isinstance(item, FieldError) and item.field in flags:
            return FieldError(item.field, f"{flags[item.field]}: {item.message}", item.unreachable)
        return item

    return GenerationError(*(told(item) for item in error.args))


# The samplers beyond the book, shared by `generate` and `inspect` (field -> flag).
SAMPLER_FLAGS = {
    "repetition_penalty": "--repetition-penalty",
    "repetition_window": "--repetition-window",
    "frequency_penalty": "--frequency-penalty",
    "presence_penalty": "--presence-penalty",
    "no_repeat_ngram": "--no-repeat-ngram",
    "min_p": "--min-p",
    "logit_bias": "--logit-bias",
    "ban": "--ban",
}


def add_sampler_arguments(p: argparse.ArgumentParser) -> None:
    """The sampler flags, as text: gptcore.sampling_settings parses and checks them."""
    g = p.add_argument_group(
        "samplers (each off by default; chain: bias/ban, repetition, frequency/presence, "
        "no-repeat-ngram, top-k, temperature, min-p, top-p)"
    )
    g.add_argument(
        "--repetition-penalty",
        metavar="R",
        help="divide positive / multiply negative logits of tokens seen in the window (> 0)",
    )
    g.add_argument(
        "--repetition-window",
        metavar="N",
        help="the last N tokens, prompt included, the penalties look at (default 64)",
    )
    g.add_argument(
        "--frequency-penalty", metavar="F", help="logit -= F x count in the window, [-2, 2]"
    )
    g.add_argument(
        "--presence-penalty", metavar="P", help="logit -= P if seen in the window, [-2, 2]"
    )
    g.add_argument("--no-repeat-ngram", metavar="N", help="never repeat an N-gram of the context")
    g.add_argument(
        "--min-p", metavar="P", help="keep tokens with probability >= P x the top one's, [0, 1]"
    )
    g.add_argument(
        "--logit-bias",
        action="append",
        default=[],
        metavar="ID=VALUE",
        help="add VALUE ([-100, 100]) to token ID's logit (repeatable)",
    )
    g.add_argument(
        "--ban",
        action="append",
        default=[],
        metavar="TEXT_OR_ID",
        help="never generate this token: an id or one token's text, \\n and \\t understood, "
        "e.g. '<|endoftext|>' (repeatable)",
    )


def sampler_text(args: argparse.Namespace) -> dict[str, str]:
    """The numeric sampler flags given, as typed, by field (absent: the default)."""
    out = {}
    for field in SAMPLER_FLAGS:
        value = getattr(args, field)
        if isinstance(value, str):
            out[field] = value
    return out

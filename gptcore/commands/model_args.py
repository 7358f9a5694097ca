"""The model-choosing flags shared by commands that need a model.

`--checkpoint C` | `--gpt2 SIZE` | `--weights DIR` | `--preset NAME [--seed S]`.
The flags only build a model spec; gptcore.weights.spec parses it and gptcore.weights.modelspec loads it.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from gptcore.settings.declare import add_flags
from gptcore.settings.model import PRESETS
from gptcore.settings.train import TrainConfig
from gptcore.weights.spec import CHECKPOINT_KINDS, ModelSpec, parse_spec

from .flags import settings_from_flags

if TYPE_CHECKING:
    import torch

    from gptcore.weights.modelspec import LoadedModel


def add_model_arguments(parser: argparse.ArgumentParser, default_preset: str | None = None) -> None:
    group = parser.add_argument_group("model (choose one)")
    source = group.add_mutually_exclusive_group(required=default_preset is None)
    source.add_argument(
        "--checkpoint",
        metavar="C",
        help="a checkpoint folder, a run folder or run name (its latest), RUN:latest or RUN:best",
    )
    source.add_argument(
        "--gpt2", metavar="SIZE", help="downloaded GPT-2 weights: 124M, 355M, 774M or 1558M"
    )
    source.add_argument(
        "--weights", metavar="DIR", help="a folder of GPT-2 weights (OpenAI or Hugging Face layout)"
    )
    source.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=default_preset,
        help=f"a freshly initialised model (default: {default_preset})" if default_preset else None,
    )
    add_flags(group, TrainConfig, ["seed"])  # as training seeds a fresh model


def spec_from_args(args: argparse.Namespace) -> ModelSpec:
    """The model spec the flags name."""
    if args.checkpoint:
        return parse_spec(args.checkpoint, CHECKPOINT_KINDS)
    if args.gpt2:
        return parse_spec(f"gpt2:{args.gpt2}")
    if args.weights:
        return parse_spec(f"weights:{args.weights}")
    return parse_spec(f"preset:{args.preset}")


def load_from_args(
    args: argparse.Namespace, device: str | torch.device = "cpu", precision: str = "fp32"
) -> LoadedModel:
    """The model the flags name, loaded by gptcore.modelspec.load_spec."""
    from gptcore.weights.modelspec import load_spec

    seed = settings_from_flags(TrainConfig, args, ["seed"]).seed
    return load_spec(spec_from_args(args), device, precision, seed=seed)

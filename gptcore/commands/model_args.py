"""The model-choosing flags shared by commands that need a model.

`--checkpoint C` | `--gpt2 SIZE` | `--weights DIR` | `--preset NAME [--seed S]`.
Loaders are imported lazily so `--help` stays fast.
"""

from __future__ import annotations

import argparse

from ..config import PRESETS


def add_model_arguments(parser: argparse.ArgumentParser, default_preset: str | None = None) -> None:
    group = parser.add_argument_group("model (choose one)")
    source = group.add_mutually_exclusive_group(required=default_preset is None)
    source.add_argument(
        "--checkpoint", metavar="C", help="a checkpoint dir, a run dir (its latest), or RUN:best"
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
    group.add_argument(
        "--seed", type=int, default=123, help="torch.manual_seed before building a --preset model"
    )


def describe_source(args: argparse.Namespace) -> str:
    if args.checkpoint:
        return f"checkpoint {args.checkpoint}"
    if args.gpt2:
        return f"GPT-2 {args.gpt2}"
    if args.weights:
        return f"weights {args.weights}"
    return f"{args.preset} (untrained, seed {args.seed})"


def load_model_from_args(args: argparse.Namespace, device: str = "cpu"):
    """The GPTModel the flags name, in eval mode on `device`."""
    import torch

    from ..model import GPTModel

    if args.checkpoint:
        from ..checkpoint import load_model

        model, _ = load_model(args.checkpoint, device)
    elif args.gpt2 or args.weights:
        from ..pretrained import model_from_spec

        model = model_from_spec(
            f"gpt2:{args.gpt2}" if args.gpt2 else f"weights:{args.weights}", device
        )
    else:
        from ..config import get_preset

        torch.manual_seed(args.seed)
        model = GPTModel(get_preset(args.preset)).to(device)
    return model.eval()

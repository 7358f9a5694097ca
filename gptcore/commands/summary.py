"""`gpt-tui summary`: parameters per component and memory estimates."""

from __future__ import annotations

import argparse
import json

from gptcore.errors import ConfigError
from gptcore.planner.memory import step_shape, training_memory
from gptcore.settings.declare import add_flags
from gptcore.settings.model import GPTConfig, get_preset
from gptcore.settings.train import TrainConfig
from gptcore.util.fmt import format_bytes

from .flags import settings_from_flags
from .model_args import add_model_arguments, load_from_args, spec_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("summary", help="parameter counts per component and memory estimates")
    add_model_arguments(p, default_preset="book-124m")
    add_flags(p, GPTConfig, ["context_length"], {"context_length": None})  # the preset's
    add_flags(p, TrainConfig, ["batch_size"])  # for the training-memory estimate
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    from gptcore.model.summary import MB, format_summary, summarize, summarize_config

    batch_size = settings_from_flags(TrainConfig, args, ["batch_size"]).batch_size
    label = spec_from_args(args).label
    if args.checkpoint or args.gpt2 or args.weights:
        if args.context_length:
            raise ConfigError("--context-length applies to --preset models only")
        loaded = load_from_args(args)
        summary, label = summarize(loaded.model), loaded.label
    else:  # counting needs no weights: build on the meta device
        config = settings_from_flags(GPTConfig, args, ["context_length"], get_preset(args.preset))
        summary = summarize_config(config)
    # A step's peak in the plain case (fp32 on a CPU); `gpt-tui plan` plans a whole run
    # on a device (its precision, free memory, time).
    shape = step_shape(summary.config, TrainConfig(batch_size=batch_size), "cpu", "fp32")
    mem = training_memory(shape)
    if args.json:
        print(
            json.dumps(
                {
                    "parameters": summary.total,
                    "by_component": summary.by_component,
                    "tied_embeddings": summary.tied,
                    "weights_mb": {
                        d: round(summary.weights_mb(d), 2) for d in ("fp32", "bf16", "fp16", "int8")
                    },
                    "training_mb": round(mem.peak / MB, 1),
                    "training_parts_mb": {k: round(v / MB, 1) for k, v in mem.parts.items()},
                }
            )
        )
    else:
        print(label)
        print(format_summary(summary))
        print(
            f"training step (AdamW, fp32 on a CPU, batch {batch_size}, context "
            f"{shape.context:,}): peak {format_bytes(mem.peak)}: {mem.summary()}"
        )
        print("  gpt-tui plan --config FILE plans a run on a device: precision, fit, time")
    return 0

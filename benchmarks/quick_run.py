"""The quick run's trajectory: what a newcomer's first run learns, epoch by epoch.

    python benchmarks/quick_run.py [--config quick] [--prompt "The return statement"]

Trains the config (default: configs/quick.toml, the Train form's first choice) in
this process on the current device, exactly as `gpt-tui train --config quick` does,
and prints one line per evaluation (step, tokens seen, train/val loss, elapsed
wall time, counting from before the model is built), each epoch's greedy sample,
the total wall time, and greedy continuations (temperature 0, as Chat's default)
of a few prompts from the final model. The last line is a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROMPTS = ("The return statement", "A class definition", "Every effort moves you")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="quick", help="a shipped config name or a TOML path")
    parser.add_argument("--prompt", action="append", help="prompt for the final samples")
    parser.add_argument("--tokens", type=int, default=30, help="tokens per final sample")
    args = parser.parse_args()
    os.environ.setdefault("GPT_TUI_HOME", tempfile.mkdtemp(prefix="quick-run-"))

    start = time.perf_counter()
    from gptcore.runs.events import EvalEnd, Finished, RunStarted, Sample
    from gptcore.sampling.stream import sample_text
    from gptcore.settings.files import load_run_config, resolve_config_path
    from gptcore.training.trainer import Trainer

    model_config, train_config = load_run_config(resolve_config_path(args.config))
    evals: list[dict] = []
    samples: list[dict] = []

    def listen(event: object) -> None:
        elapsed = time.perf_counter() - start
        if isinstance(event, RunStarted):
            print(
                f"{event.parameters:,} parameters on {event.device} ({event.precision}), "
                f"{event.total_steps} steps",
                flush=True,
            )
        elif isinstance(event, EvalEnd):
            evals.append(
                {
                    "step": event.step,
                    "tokens": event.tokens_seen,
                    "train": round(event.train_loss, 3),
                    "val": round(event.val_loss, 3),
                    "elapsed_s": round(elapsed, 1),
                }
            )
            print(
                f"step {event.step:4d}  tokens {event.tokens_seen:8,}  train "
                f"{event.train_loss:.3f}  val {event.val_loss:.3f}  {elapsed:6.1f} s",
                flush=True,
            )
        elif isinstance(event, Sample):
            samples.append({"epoch": event.epoch + 1, "step": event.step, "text": event.text})
            print(f"  epoch {event.epoch + 1} sample: {event.text!r}", flush=True)
        elif isinstance(event, Finished):
            print(f"finished ({event.reason}) after {elapsed:.1f} s", flush=True)

    trainer = Trainer(model_config, train_config, listeners=[listen])
    trainer.run()
    total = time.perf_counter() - start
    replies = {}
    for prompt in args.prompt or PROMPTS:
        replies[prompt] = sample_text(trainer.model, prompt, args.tokens, temperature=0.0)
        print(f"temperature 0: {replies[prompt]!r}")
    summary = {
        "config": args.config,
        "wall_s": round(total, 1),
        "cpus": os.cpu_count(),
        "evals": evals,
        "samples": samples,
        "replies": replies,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

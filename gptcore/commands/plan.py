"""`gpt-tui plan`: will a run fit a device's memory, what would make it fit, and how
long it takes: measured on this machine, estimated from FLOPs for a GPU elsewhere."""

from __future__ import annotations

import argparse
import json

from gptcore.planner.gpus import GPUS
from gptcore.settings.files import load_run_config

from .flags import add_set_flag


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan",
        help="memory, fit and time of a run on this device or a named GPU",
        description="Plans a run before it starts: the peak memory of a training step and "
        "its largest parts, whether it fits the device, what would make it fit, and the "
        "run's time (a few real steps measured here; for a GPU that is not here, "
        "estimated from FLOPs).",
    )
    p.add_argument(
        "--config", metavar="FILE", required=True, help="run config TOML or a preset name"
    )
    add_set_flag(p, "override a setting, as for train (repeatable)")
    p.add_argument(
        "--device",
        metavar="DEVICE",
        help="cpu, cuda[:N], or a GPU by name (" + ", ".join(name for name, _ in GPUS) + "); "
        "default: the config's train.device",
    )
    p.add_argument("--no-time", action="store_true", help="memory only: do not time steps")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gptcore.planner.devices import plan_device
    from gptcore.planner.plan import plan_run

    model, train = load_run_config(args.config, args.overrides)
    device = plan_device(args.device, train.device)
    plan = plan_run(model, train, device, measure=not args.no_time)
    if args.json:
        print(json.dumps(plan.to_json()))
    else:
        print(plan.text())
    return 0 if plan.fits else 1

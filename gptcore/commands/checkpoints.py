"""`gpt-tui checkpoints`: list, show, delete, rename, export (the book's .pth or Hugging
Face, gptcore.weights.export) and import from the book's .pth."""

from __future__ import annotations

import argparse
import json
import time

from gptcore.util.progress import ProgressLine

from .flags import add_set_flag


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "checkpoints",
        help="list, inspect, delete, rename, export or import checkpoints",
        description="Checkpoints live in RUN/checkpoints/. A SPEC is a checkpoint folder, a run "
        "folder or run name (its latest checkpoint), RUN:latest or RUN:best.",
    )
    p.set_defaults(func=_list, json=False, root=None)
    verbs = p.add_subparsers(dest="verb", metavar="VERB")

    ls = verbs.add_parser(
        "list", aliases=["ls"], help="every checkpoint of every run (the default; alias: ls)"
    )
    ls.add_argument("--root", help="a runs folder or one run (default: the data dir's runs)")
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    ls.set_defaults(func=_list)

    show = verbs.add_parser("show", help="a checkpoint's settings and numbers")
    show.add_argument("spec", metavar="SPEC")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_show)

    rm = verbs.add_parser("rm", help="delete checkpoints")
    rm.add_argument("specs", metavar="SPEC", nargs="+")
    rm.set_defaults(func=_rm)

    mv = verbs.add_parser("rename", help="rename a checkpoint (renamed ones are never pruned)")
    mv.add_argument("spec", metavar="SPEC")
    mv.add_argument("name")
    mv.set_defaults(func=_rename)

    ex = verbs.add_parser(
        "export",
        help="write the book's .pth or a Hugging Face folder",
        description="pth: the book's {model_state_dict, optimizer_state_dict}, which its "
        "GPTModel loads; hf: config.json + model.safetensors for transformers' "
        "GPT2LMHeadModel. Without OUT the export goes to the run's exports/ folder, "
        "as the Checkpoints screen's e / h keys do.",
    )
    ex.add_argument("spec", metavar="SPEC")
    ex.add_argument("out", metavar="OUT", nargs="?", help="the .pth file or HF folder to write")
    ex.add_argument("--format", choices=["pth", "hf"], default="pth", help="pth (default) or hf")
    ex.set_defaults(func=_export)

    im = verbs.add_parser(
        "import",
        help="make a run from a book .pth (weights and optimizer state)",
        description="The new run holds one checkpoint at step 0 (the .pth has no step count "
        "or data position) with the file's weights and AdamW state, and records the train "
        "settings of --config, so `gpt-tui train --resume RUN --config SAME` continues it.",
    )
    im.add_argument("pth", metavar="FILE.pth")
    im.add_argument(
        "--config",
        help="the run config it was trained with (default: book, with windows of the "
        "model's context length)",
    )
    im.add_argument("--preset", help="the model preset it was trained with (default: the config's)")
    add_set_flag(im, "override a setting of that config (repeatable)")
    im.add_argument("--name", default="imported", help="name of the new run folder")
    im.set_defaults(func=_import)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _list(args: argparse.Namespace) -> int:
    from gptcore.runs.checkpoints import list_checkpoints, run_picks

    infos = list_checkpoints(args.root)
    picks = run_picks(infos)
    latest = {p.latest.path for p in picks.values()}
    best = {p.best.path for p in picks.values() if p.best is not None}
    if args.json:
        for info in infos:
            row = {k: (str(v) if k == "path" else v) for k, v in vars(info).items()}
            row.update(latest=info.path in latest, best=info.path in best)
            print(json.dumps(row))
        return 0
    if not infos:
        print("no checkpoints yet (gpt-tui train saves them under each run's checkpoints/)")
        return 0
    print(
        f"{'run':<32} {'checkpoint':<16} {'step':>7} {'epoch':>5} {'val':>7} {'':<11}  "
        "model / error"
    )
    for i in infos:
        if i.error:
            print(f"{i.run:<32} {i.name:<16} {'':>7} {'':>5} {'':>7} {'':<11}  BROKEN: {i.error}")
        else:
            mark = ",".join(
                m for m, paths in (("latest", latest), ("best", best)) if i.path in paths
            )
            print(
                f"{i.run:<32} {i.name:<16} {i.step:>7} {i.epoch:>5} {_fmt(i.val_loss):>7} "
                f"{mark:<11}  {i.model}"
            )
    return 0


def _show(args: argparse.Namespace) -> int:
    from gptcore.runs.checkpoint import checkpoint_summary, load_checkpoint
    from gptcore.weights.modelspec import checkpoint_path

    summary = checkpoint_summary(load_checkpoint(checkpoint_path(args.spec)))
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(summary["created"]))
    print(f"path         {summary['path']}")
    print(f"model        {summary['model_name']}  {summary['model']}")
    print(f"step/epoch   {summary['step']} / {summary['epoch']}  ({summary['reason']}, {created})")
    print(f"tokens seen  {summary['tokens_seen']:,}")
    print(
        f"losses       train {_fmt(summary['train_loss'])}, val {_fmt(summary['val_loss'])}, "
        f"best val {_fmt(summary['best_val_loss'])}"
    )
    print(f"optimizer    {'saved' if summary['has_optimizer'] else 'not saved'}")
    return 0


def _rm(args: argparse.Namespace) -> int:
    from gptcore.runs.checkpoints import delete_checkpoint, require_own_checkpoint
    from gptcore.weights.modelspec import checkpoint_path

    # Resolve and check all before deleting any: one foreign path deletes nothing.
    paths = [require_own_checkpoint(checkpoint_path(s)) for s in args.specs]
    for path in paths:
        print(delete_checkpoint(path).message())
    return 0


def _rename(args: argparse.Namespace) -> int:
    from gptcore.runs.checkpoints import rename_checkpoint
    from gptcore.weights.modelspec import checkpoint_path

    print(rename_checkpoint(checkpoint_path(args.spec), args.name))
    return 0


def _export(args: argparse.Namespace) -> int:
    from gptcore.weights.export import export_checkpoint

    bar = ProgressLine("exporting", "B")  # stderr, on a terminal only
    try:
        out = export_checkpoint(args.spec, args.format, args.out, progress=bar.update)
    finally:
        bar.close()
    print(out)
    return 0


def _import(args: argparse.Namespace) -> int:
    import sys

    from gptcore.runs.checkpoint import load_checkpoint
    from gptcore.weights.book_import import import_book_run, import_configs

    model_config, train_config = import_configs(args.config, args.preset, args.overrides)
    bar = ProgressLine("importing", "B")  # stderr, on a terminal only
    try:
        path = import_book_run(args.pth, model_config, train_config, args.name, bar.update)
    finally:
        bar.close()
    if not load_checkpoint(path, verify=False).has_optimizer:
        print(
            f"note: {args.pth} holds no optimizer_state_dict; AdamW starts afresh", file=sys.stderr
        )
    print(path)
    return 0

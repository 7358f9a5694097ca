"""docs/settings.md, made from the declarations: every setting's key, default, valid
values and help. `python -m gptcore.settings.reference > docs/settings.md` rewrites
it; tests/test_settings_declared.py fails while the page and the declarations differ."""

from __future__ import annotations

from gptcore.settings.declare import settings_table
from gptcore.settings.model import PRESETS, GPTConfig
from gptcore.settings.sampling import GenerationSettings, InspectSettings
from gptcore.settings.train import TrainConfig


def settings_markdown() -> str:
    """The whole settings page."""
    presets = ", ".join(f"`{name}`" for name in PRESETS)
    return (
        "# Settings\n\n"
        "Every setting is declared once, in `gptcore/settings/` (its type, default, bounds,\n"
        "label and help); the TOML loader, `--set`, the CLI flags, the app's fields and\n"
        "their messages, and this page all come from that declaration. This page is\n"
        "generated: `python -m gptcore.settings.reference > docs/settings.md`.\n\n"
        "A run config is a TOML file with a `[model]` and a `[train]` table. `[model]` is a\n"
        f"preset name or a table (`preset = NAME` plus any keys below); presets: {presets}.\n"
        "`gpt-tui train --set KEY=VALUE` overrides one key (`--set lr=3e-4`,\n"
        "`--set model.n_layers=4`). An optional setting left out (or `off`) is unset.\n\n"
        "## `[model]`\n\n"
        f"{settings_table(GPTConfig)}\n"
        "## `[train]`\n\n"
        f"{settings_table(TrainConfig)}\n"
        "## Generation (`gpt-tui generate`, `timeline`, Chat)\n\n"
        "The flags are the keys with dashes (`--top-k`); `seed` is `--sample-seed`.\n\n"
        f"{settings_table(GenerationSettings)}\n"
        "## Next-token inspector (`gpt-tui inspect`, Chat's ctrl+n)\n\n"
        "The inspector takes generation's `temperature`, `top_k`, `top_p` and samplers\n"
        "(temperature 1 by default) and these:\n\n"
        f"{settings_table(InspectSettings, ['temperatures', 'draws', 'seed'])}"
    )


if __name__ == "__main__":
    print(settings_markdown(), end="")

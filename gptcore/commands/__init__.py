"""One module per `gpt-tui` subcommand (see gptcore/cli.py)."""

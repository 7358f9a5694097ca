"""The gpt-tui Textual app; it drives gptcore through its public API."""

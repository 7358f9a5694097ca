"""gptcore: the gpt-tui engine (model, tokenizer, data, training, generation).

This package never imports Textual: the TUI talks to it through its public API.
"""

__version__ = "0.1.0"

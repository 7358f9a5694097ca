"""The TOML run presets (book.toml, tiny.toml, ...), shipped as the package gptcore.configs.

pyproject.toml maps gptcore.configs onto this folder; gptcore.config.shipped_configs lists them.
"""

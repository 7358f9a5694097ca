"""Every setting declared once (type, default, bounds, label, help): the model's
shape and presets, a training run's settings, and how TOML files and `--set`
overrides become them. No torch here: the app and the CLI parser import it at start-up.
"""

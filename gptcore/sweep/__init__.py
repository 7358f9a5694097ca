"""Sweeps: many runs of one base config under one budget, searched by Optuna.

spec.py         the sweep file: base config, search space, sampler, pruner, budget
study.py        Optuna (an optional dependency): its sampler, pruner and study
folder.py       a sweep's folder: its frozen spec, study database and trial claims
prune.py        the pruner's check at each evaluation, and why it pruned
runner.py       running trials as normal gpt-tui runs; stop, resume, share a study
leaderboard.py  the trials ranked, as a table, JSON or CSV; the best config as TOML
"""

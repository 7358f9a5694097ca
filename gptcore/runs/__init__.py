"""Run folders and what is stored in them: the folder layout, the event stream
(metrics.jsonl), checkpoints, the run lock, the run table and its curves.
"""

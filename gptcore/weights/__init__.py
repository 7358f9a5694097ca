"""Weights in and out: GPT-2 downloads and their layouts, loaders, Hugging Face and
book .pth export/import, and model specs (one string names any model).
"""

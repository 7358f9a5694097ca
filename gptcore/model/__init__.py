"""The GPT itself: GPTModel with its KV cache, dropout, the GPT-2 tokenizer, the
token view, parameter counts and summaries, and inference precision.
"""

"""Text generation: the sampler chain (chain), decoding with the KV cache (decode),
streaming text (stream), the prompt and the chat turn (chat), settings from typed
text (from_text), the next-token distribution (nexttoken) and its analysis
(analysis), the temperature figure (figures) and the sample timeline (timeline).
"""

"""Text generation: the sampler chain, streaming decoding with the KV cache, the
next-token analysis, the temperature figure and the sample timeline.
"""

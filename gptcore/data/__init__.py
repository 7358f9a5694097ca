"""Corpora: reading text, tokenizing once into a cache, the windows a model trains
on, the order it reads them in and the batch plan.
"""

"""The machine: which device to use, what it is fast at (precision, fused kernels,
MFU), the precision a run trains in there (and its autocast) and what it is doing now
(CPU, memory, GPU).
"""

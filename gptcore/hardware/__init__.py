"""The machine: which device to use, what it is fast at (precision, fused kernels,
MFU) and what it is doing now (CPU, memory, GPU).
"""

"""The run planner: will a run fit in a device's memory, how long will it take, and
the batch that fits by itself.

- memory: a model of a training step's memory (weights, gradients, AdamW state,
  activations per layer, the logits, autocast copies, DDP buckets, the batch) and of
  generation's (weights + KV cache);
- devices: the device a plan is for (this one, or a GPU by name from a small table);
- timing: the run's wall time from a few real, timed training steps (a probe);
- fit: what would make a run fit (a smaller batch with accumulation, bf16, ...);
- autobatch: `batch_size = "auto"`, the largest micro-batch that fits;
- plan: the task function front ends call (`gpt-tui plan`, the Train form).
"""

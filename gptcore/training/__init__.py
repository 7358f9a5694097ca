"""Training: the Trainer and its parts (checkpoint policy, health, stop signals),
evaluation, resuming, the run-time estimate and GPT-2 reference losses.
"""

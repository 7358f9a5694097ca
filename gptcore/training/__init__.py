"""Training: the Trainer and its parts (checkpoint policy, health, stop signals),
evaluation, resuming and GPT-2 reference losses (a run's plan and time estimate are
gptcore.planner's).
"""

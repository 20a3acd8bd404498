"""ntkmtl: NTKMTL-style multi-task-learning experiments at scale."""

__version__ = "0.1.0"

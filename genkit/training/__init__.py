"""The training loop and what it owns: EMA, checkpoints, random state, the run folder."""

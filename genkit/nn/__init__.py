"""Helpers on modules below methods and training: weight averages (EMA) and replayable random
state (the same dropout masks in two passes)."""

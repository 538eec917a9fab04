"""Helpers on modules below methods and training: weight averages (EMA), replayable random
state (the same dropout masks in two passes) and layers the networks share."""

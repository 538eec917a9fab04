"""Per-sample random streams, so samples do not depend on batch size or process count."""

from __future__ import annotations

import math
from typing import Sequence

import torch

from genkit.maths.philox import MASK32, normal_pairs, philox_rounds, round_keys

SEED_RANGE = (-(2**63), 2**64)  # what torch.Generator.manual_seed accepts; negatives count mod 2**64


class PerSampleNoise:
    """Each sample's draws are a pure function of its seed and the draw's place in the sequence.

    Draw k (the k-th call of randn or randint, from 0) of a sample with seed s takes its value
    i from the block of Philox-4x32-10 (genkit.maths.philox) with key s (64 bits) and counter
    (i // 4, 0, k, 0): the whole batch is one tensor computation on ``device``, about 75 ops
    however large the batch, and a sample's values are the same bits whatever batch it is
    drawn in. Normals come from pairs of words by Box-Muller in float64, rounded to the dtype
    asked for (so a float32 draw is the float64 draw rounded).
    """

    def __init__(self, seeds: Sequence[int], device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        low, high = _seed_keys(seeds, self.device)  # each (batch, 1): the seeds' 32-bit halves
        self.size = low.shape[0]
        self.keys = round_keys(low, high)  # the same for every draw: computed once
        self.draws = 0

    def _words(self, blocks: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The words of ``blocks`` Philox blocks of the next draw as pairs (w0, w2) and
        (w1, w3), each (2, batch, blocks)."""
        if blocks > 2**32:
            raise ValueError(f"one draw takes at most 2**34 values per sample, asked for {4 * blocks}")
        draw, self.draws = self.draws, self.draws + 1
        block = torch.arange(blocks, dtype=torch.int64, device=self.device).unsqueeze(0)  # (1, blocks): after the batch
        counter = torch.stack((block, torch.full_like(block, draw)))  # (c0, c2); c1 = c3 = 0
        return philox_rounds(counter, None, self.keys)

    def randn(self, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Standard normals of ``shape`` per sample: (batch, *shape)."""
        count = math.prod(shape)
        even, odd = self._words(-(-count // 4))
        # value 4j + m of a sample is block j's normal m: (w0, w1) give values 0 and 1, (w2, w3) 2 and 3
        pairs = normal_pairs(even, odd).permute(1, 2, 0, 3)  # (batch, blocks, (w0, w2), (cos, sin))
        z = torch.empty(pairs.shape, dtype=dtype, device=self.device).copy_(pairs)  # rounded to dtype
        return z.view(self.size, 4 * z.shape[1])[:, :count].reshape(self.size, *shape)

    def randint(self, high: int) -> torch.Tensor:
        """One integer in [0, high) per sample (a class label): floor(w high / 2**32) of one word
        (Lemire's multiply-shift; each value's probability is off by under high / 2**32)."""
        if not 0 < high <= 2**31:
            raise ValueError(f"randint needs 0 < high <= 2**31, got {high}")
        word = self._words(1)[0][0, :, 0]  # w0 of block 0
        return (word * high) >> 32

    def __len__(self) -> int:
        return self.size


def _seed_keys(seeds: Sequence[int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The seeds' low and high 32-bit words, each (len(seeds), 1), on ``device``."""
    low, high = SEED_RANGE
    if isinstance(seeds, range) and len(seeds) and low <= min(seeds[0], seeds[-1]) and max(seeds[0], seeds[-1]) < 2**62:
        values = torch.arange(seeds.start, seeds.stop, seeds.step, dtype=torch.int64, device=device)  # no list
    else:
        seeds = [int(seed) for seed in seeds]
        bad = [seed for seed in seeds if not low <= seed < high]
        if bad:
            raise ValueError(f"a seed must lie in [-2**63, 2**64), got {bad[0]}")
        # two's complement: the same 64 bits as the seed mod 2**64
        values = torch.tensor([seed - 2**64 if seed >= 2**63 else seed for seed in seeds], dtype=torch.int64).to(device)
    values = values.unsqueeze(1)
    return values & MASK32, (values >> 32) & MASK32

"""Philox-4x32-10, a counter-based random number generator, vectorised with torch integer ops.

Salmon, Moraes, Dror and Shaw (2011), "Parallel random numbers: as easy as 1, 2, 3" (SC11),
Section 3.2; constants and round structure as in their Random123 library (philox.h), whose
known-answer vectors the tests check. A counter-based generator is a keyed bijection of a
128-bit counter: its output for (key, counter) needs no state, so the per-sample streams of a
whole batch (key = the sample's seed) are one tensor computation on any device, and a sample's
draws cannot depend on the batch it is in.

Words are int64 tensors. A round's 32 x 32-bit product is one int64 multiplication, which
wraps modulo 2**64 in two's complement on CPU and CUDA alike (torch's integer kernels; the
known-answer and CPU/CUDA tests check it): the product's 64 bits are exact, its high word is an
arithmetic shift by 32 and its low word the product itself, whose bits above 32 are masked off
after the round's xors instead of at once. On a GPU every op is a kernel launch, so a round is
kept to six ops on the lane pairs.
"""

from __future__ import annotations

import functools
import math

import torch

MASK32 = 0xFFFFFFFF
PHILOX_M = (0xD2511F53, 0xCD9E8D57)  # round multipliers of lanes 0 and 2
PHILOX_W = (0x9E3779B9, 0xBB67AE85)  # key increments per round (golden ratio, sqrt(3) - 1)
ROUNDS = 10


def round_keys(k0: torch.Tensor, k1: torch.Tensor, rounds: int = ROUNDS) -> torch.Tensor:
    """Every round's key, (rounds, 2, 2, *shape): [r, 0] = (k1, k0) + r (W1, W0) mod 2**32 and
    [r, 1] = (k0, k1) + r (W0, W1), the two lane orders rounds alternate between (Random123's
    philox4x32bumpkey). Keys that do not change between draws need this once."""
    key = torch.stack(torch.broadcast_tensors(k0, k1))
    ones = [1] * (key.dim() - 1)
    steps = torch.arange(rounds, dtype=torch.int64, device=key.device).view(rounds, 1, *ones)
    bumps = torch.tensor(PHILOX_W, dtype=torch.int64).to(key.device).view(2, *ones)
    keys = (key + steps * bumps) & MASK32
    return torch.stack((keys.flip(1), keys), 1)


def philox_rounds(multiplied: torch.Tensor, other: torch.Tensor | None, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The rounds of Philox-4x32 on counters given as lane pairs (first dimension):
    ``multiplied`` = (c0, c2), ``other`` = (c3, c1) (None: zeros), ``keys`` from round_keys.
    Returns the output words as the pairs (w0, w2) and (w1, w3), int64 in [0, 2**32).

    A round maps (x0, x1, x2, x3) to (hi(M1 x2) ^ x1 ^ k0, lo(M1 x2), hi(M0 x0) ^ x3 ^ k1,
    lo(M0 x0)). The pair (x0, x2) comes out as (x2', x0'); rather than permute both pairs
    back, the multiplied pair keeps the order it comes out in (so the multipliers and keys
    alternate) and only the other pair, the products, is flipped to match: one op a round.
    """
    natural = True  # multiplied is (x0, x2), other (x3, x1); else (x2, x0) and (x1, x3)
    device = multiplied.device
    constants = _constants(device)
    multipliers = {order: constants[order].view(2, *[1] * (multiplied.dim() - 1)) for order in (True, False)}
    reverse = constants["reverse"]
    shape = torch.broadcast_shapes(multiplied.shape, keys.shape[2:], () if other is None else other.shape)
    # Three buffers of the full shape written in place (the inputs are left alone): on a CPU a
    # fresh tensor per op costs as much again in page faults as the op.
    state, product, flipped = (torch.empty(shape, dtype=torch.int64, device=device) for _ in range(3))
    rounds = keys.shape[0]
    for r in range(rounds):
        torch.mul(multiplied.expand(shape), multipliers[natural], out=product)  # mod 2**64: lo, and hi above
        torch.bitwise_right_shift(product, 32, out=state)
        if other is not None:
            state ^= other
        state ^= keys[r, 0 if natural else 1]
        state &= MASK32
        multiplied = state
        if r < rounds - 1:
            other = torch.index_select(product, 0, reverse, out=flipped)
        natural = not natural
    product &= MASK32  # the last products, unflipped: (x1, x3) when multiplied is (x0, x2)
    return (multiplied, product) if natural else (multiplied.flip(0), product.flip(0))


@functools.lru_cache(maxsize=None)
def _constants(device: torch.device) -> dict:
    """On ``device``, copied there once: the multipliers (M0, M1) for the natural lane order
    (key True) and reversed (False), and the index that swaps a lane pair ("reverse")."""
    return {
        True: torch.tensor(PHILOX_M, dtype=torch.int64).to(device),
        False: torch.tensor(PHILOX_M[::-1], dtype=torch.int64).to(device),
        "reverse": torch.tensor([1, 0]).to(device),
    }


def philox4x32(counter: tuple, key: tuple, rounds: int = ROUNDS) -> tuple[torch.Tensor, ...]:
    """The four output words of Philox-4x32-``rounds`` for every counter and key (broadcast),
    words 0..3 of Random123's philox4x32_R. ``counter``: four int64 tensors or ints in
    [0, 2**32); ``key``: two."""
    device = next((t.device for t in (*counter, *key) if isinstance(t, torch.Tensor)), torch.device("cpu"))
    c0, c1, c2, c3, k0, k1 = (torch.as_tensor(x, dtype=torch.int64, device=device) for x in (*counter, *key))
    shape = torch.broadcast_shapes(c0.shape, c1.shape, c2.shape, c3.shape, k0.shape, k1.shape)
    k0, k1 = (k.reshape((1,) * (len(shape) - k.dim()) + tuple(k.shape)) for k in (k0, k1))
    multiplied = torch.stack([c.expand(shape) for c in (c0, c2)])
    other = torch.stack([c.expand(shape) for c in (c3, c1)])
    even, odd = philox_rounds(multiplied, other, round_keys(k0, k1, rounds))
    return even[0], odd[0], even[1], odd[1]


def uniform_from_words(words: torch.Tensor) -> torch.Tensor:
    """(w + 1/2) / 2**32 in float64: strictly inside (0, 1), exact for every 32-bit word."""
    return (words.to(torch.float64) + 0.5) * 2.0**-32


def normal_pairs(radius_words: torch.Tensor, angle_words: torch.Tensor) -> torch.Tensor:
    """Box and Muller (1958) in float64: two independent standard normals per pair of words,
    (r cos theta, r sin theta) with r = sqrt(-2 ln u), u = uniform_from_words(radius_words),
    theta = 2 pi angle_words / 2**32; shape (*words.shape, 2). With u >= 2**-33 the largest
    |z| is sqrt(66 ln 2) = 6.76, which a true normal exceeds with probability 1.4e-11."""
    radius = torch.sqrt(torch.log(uniform_from_words(radius_words)) * -2.0)
    angle = angle_words.to(torch.float64) * (2 * math.pi * 2.0**-32)
    # not torch.polar: one op, but on a CPU it takes scalar sin and cos, four times as slow
    return torch.stack((radius * torch.cos(angle), radius * torch.sin(angle)), -1)

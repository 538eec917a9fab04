"""The per-sample noise: Philox-4x32-10 against Random123 and a plain-integer reference, draws
that do not depend on the batch, sound normals, and the same draws on CPU and CUDA."""

from __future__ import annotations

import math

import pytest
import torch

from genkit.maths import PerSampleNoise
from genkit.maths.philox import philox4x32

MASK = 0xFFFFFFFF


def philox_reference(counter, key, rounds=10):
    """Philox-4x32 as Salmon et al. (2011) define it, in Python integers."""
    x0, x1, x2, x3 = counter
    k0, k1 = key
    for r in range(rounds):
        if r:
            k0, k1 = (k0 + 0x9E3779B9) & MASK, (k1 + 0xBB67AE85) & MASK
        p0, p1 = 0xD2511F53 * x0, 0xCD9E8D57 * x2
        x0, x1, x2, x3 = (p1 >> 32) ^ x1 ^ k0, p1 & MASK, (p0 >> 32) ^ x3 ^ k1, p0 & MASK
    return x0, x1, x2, x3


def normal_reference(seed: int, draw: int, index: int) -> float:
    """Value ``index`` of draw ``draw`` of a sample, as PerSampleNoise documents it."""
    seed %= 2**64
    words = philox_reference((index // 4, 0, draw, 0), (seed & MASK, seed >> 32))
    pair = index % 4 // 2
    radius = math.sqrt(-2 * math.log((words[2 * pair] + 0.5) / 2**32))
    angle = 2 * math.pi * words[2 * pair + 1] / 2**32
    return radius * (math.cos(angle) if index % 2 == 0 else math.sin(angle))


# Random123's tests/kat_vectors, the three philox4x32 10 lines: counter, key, result
KNOWN_ANSWERS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((MASK,) * 4, (MASK, MASK), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0), (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("counter, key, expected", KNOWN_ANSWERS)
def test_philox_gives_random123s_known_answers(counter, key, expected):
    assert tuple(int(word) for word in philox4x32(counter, key)) == expected
    assert philox_reference(counter, key) == expected


def test_philox_tensors_match_the_integer_reference_word_for_word():
    generator = torch.Generator().manual_seed(0)
    counters = torch.randint(0, 2**32, (4, 50), generator=generator)
    keys = torch.randint(0, 2**32, (2, 50), generator=generator)
    words = torch.stack(philox4x32(tuple(counters), tuple(keys)))
    for n in range(50):
        expected = philox_reference(tuple(counters[:, n].tolist()), tuple(keys[:, n].tolist()))
        assert tuple(words[:, n].tolist()) == expected


def test_draws_follow_the_documented_counter_layout():
    seeds = [0, 1, 2**32 + 5, 2**64 - 1, -1]  # -1 is 2**64 - 1 as torch's manual_seed takes it
    noise = PerSampleNoise(seeds)
    labels = noise.randint(10)  # draw 0
    z = noise.randn(7, dtype=torch.float64)  # draw 1
    for row, seed in enumerate(seeds):
        w0 = philox_reference((0, 0, 0, 0), (seed % 2**64 & MASK, seed % 2**64 >> 32))[0]
        assert labels[row].item() == w0 * 10 >> 32
        expected = torch.tensor([normal_reference(seed, 1, i) for i in range(7)], dtype=torch.float64)
        torch.testing.assert_close(z[row], expected, rtol=1e-12, atol=1e-12)  # libm and SLEEF may differ in the last bit
    torch.testing.assert_close(z[3], z[4], rtol=0, atol=0)


def test_float32_draws_are_the_float64_draws_rounded():
    wide, narrow = PerSampleNoise(range(5)), PerSampleNoise(range(5))
    assert torch.equal(narrow.randn(3, 9), wide.randn(3, 9, dtype=torch.float64).float())


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_a_samples_draws_are_the_same_bits_in_any_batch(device):
    """Batches of 1, 7 and 64 (a sequence of draws of several shapes and dtypes) agree bitwise."""

    def draws(seeds):
        noise = PerSampleNoise(seeds, device)
        return [noise.randint(10), noise.randn(3, 5, 7), noise.randn(3, 5, 7, dtype=torch.float64), noise.randn(2), noise.randn()]

    seeds = range(2**32 * 3, 2**32 * 3 + 64)
    whole = draws(seeds)
    for batch in (1, 7):
        for start in range(0, 64, batch):
            part = draws(seeds[start : start + batch])
            for got, expected in zip(part, whole):
                assert torch.equal(got, expected[start : start + batch])


def test_normals_are_standard_and_independent():
    """Mean, variance, fourth moment and a Kolmogorov-Smirnov distance of 2**18 draws of one
    fixed set of seeds, each well inside what a true N(0, 1) sample of that size gives."""
    noise = PerSampleNoise(range(1024))
    z = noise.randn(256, dtype=torch.float64)
    values = z.flatten()
    n = values.numel()
    assert abs(values.mean().item()) < 4 / math.sqrt(n)
    assert abs(values.var().item() - 1) < 4 * math.sqrt(2 / n)
    assert abs(values.pow(4).mean().item() - 3) < 4 * math.sqrt(96 / n)
    ordered, _ = values.sort()
    cdf = torch.special.ndtr(ordered)
    rank = torch.arange(1, n + 1, dtype=torch.float64)
    distance = torch.maximum(rank / n - cdf, cdf - (rank - 1) / n).max().item()
    assert distance * math.sqrt(n) < 1.95  # the Kolmogorov distribution's 0.1% point
    # neighbours in a sample (the cos and sin of one pair), neighbouring samples, the next draw
    following = noise.randn(256, dtype=torch.float64)
    for a, b in [(z[:, 0::2], z[:, 1::2]), (z[:-1], z[1:]), (z, following)]:
        assert abs(torch.corrcoef(torch.stack((a.flatten(), b.flatten())))[0, 1].item()) < 4 / math.sqrt(a.numel())


def test_labels_are_uniform():
    labels = PerSampleNoise(range(20000)).randint(10)
    counts = torch.bincount(labels, minlength=10).double()
    chi2 = ((counts - 2000) ** 2 / 2000).sum().item()
    assert labels.min() >= 0 and labels.max() <= 9 and chi2 < 27.9  # chi-square, 9 dof, 0.1%


def test_seeds_outside_64_bits_are_refused():
    with pytest.raises(ValueError, match="seed must lie in"):
        PerSampleNoise([2**64])
    with pytest.raises(ValueError, match="seed must lie in"):
        PerSampleNoise([-(2**63) - 1])
    assert len(PerSampleNoise([])) == 0 and PerSampleNoise([]).randn(3).shape == (0, 3)


@pytest.mark.gpu
def test_cuda_draws_match_the_cpus():
    """The integer words and labels are the same bits on CUDA; the normals take log, sin and
    cos in float64 from each device's own library, which may differ in the last bit, so a
    float32 value differs only where that straddles a rounding boundary, by one ulp at most."""
    generator = torch.Generator().manual_seed(1)
    counters = torch.randint(0, 2**32, (4, 4096), generator=generator)
    keys = torch.randint(0, 2**32, (2, 4096), generator=generator)
    on_cpu = torch.stack(philox4x32(tuple(counters), tuple(keys)))
    on_cuda = torch.stack(philox4x32(tuple(counters.cuda()), tuple(keys.cuda())))
    assert torch.equal(on_cpu, on_cuda.cpu())
    seeds = range(2**32 * 7, 2**32 * 7 + 256)
    cpu, cuda = PerSampleNoise(seeds), PerSampleNoise(seeds, "cuda")
    assert torch.equal(cpu.randint(1000), cuda.randint(1000).cpu())
    a, b = cpu.randn(3, 32, 32), cuda.randn(3, 32, 32).cpu()
    ulps = (a.view(torch.int32) - b.view(torch.int32)).abs()
    assert ulps.max().item() <= 1 and (ulps > 0).double().mean().item() < 1e-5
    torch.testing.assert_close(cpu.randn(5, dtype=torch.float64), cuda.randn(5, dtype=torch.float64).cpu(), rtol=1e-12, atol=1e-12)

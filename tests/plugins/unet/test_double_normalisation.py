"""sCT's adaptive double normalisation (Lu & Song 2025, section 4.1), the U-Nets' option
``double_normalisation``: the formula, what it leaves alone when off, forward-mode AD, training."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn.functional import silu

from genkit.training.loop import Trainer
from genkit.training.run import RunFolder
from genkit_unet.layers import BlockStyle, ResidualBlock, pixel_norm, xavier

from test_image_training import image_config, tiny_images
from test_unet import NETWORKS, SMALL, build, count, randomized


def test_pixel_norm_divides_by_the_root_mean_square_over_channels():
    v = torch.tensor([3.0, 4.0, 0.0, 0.0]).reshape(2, 2, 1, 1)  # sample 0: (3, 4), sample 1: (0, 0)
    expected = torch.tensor([3 / math.sqrt(12.5), 4 / math.sqrt(12.5), 0.0, 0.0]).reshape(2, 2, 1, 1)
    torch.testing.assert_close(pixel_norm(v), expected)
    w = torch.randn(3, 5, 2, 2)
    torch.testing.assert_close(pixel_norm(w).square().mean(dim=1), torch.ones(3, 2, 2))
    torch.testing.assert_close(pixel_norm(10 * w), pixel_norm(w))  # the size of v does not reach the output


def tiny_block(double_normalisation: bool, adaptive_scale: bool = True) -> ResidualBlock:
    style = BlockStyle(
        embedding_channels=6, dropout=0.0, skip_scale=0.5, eps=1e-6, resample_filter=(1, 1), project_resampled_skip=False,
        adaptive_scale=adaptive_scale, channels_per_head=None, init=xavier(), zero_init=xavier(), attention_init=xavier(),
        double_normalisation=double_normalisation,
    )
    torch.manual_seed(0)
    return ResidualBlock(4, 8, style, resample=None, attention=False).double()


def by_hand(block: ResidualBlock, x: torch.Tensor, embedding: torch.Tensor, modulate) -> torch.Tensor:
    """The block's forward pass written out, with the modulation ``modulate(norm1(h), s, b)``."""
    h = block.conv0(silu(block.norm0(x)))
    s, b = (m[:, :, None, None] for m in block.modulation(embedding).chunk(2, dim=1))
    h = block.conv1(silu(modulate(block.norm1(h), s, b)))
    return (h + block.skip(x)) * block.skip_scale


def rms_normalised(v: torch.Tensor) -> torch.Tensor:
    channels = v.shape[1]
    return v / torch.sqrt(sum(v[:, c] ** 2 for c in range(channels))[:, None] / channels + 1e-8)


def test_the_block_modulates_by_the_pixel_normalised_scale_and_shift():
    x, embedding = torch.randn(2, 4, 5, 5, dtype=torch.float64), torch.randn(2, 6, dtype=torch.float64)
    block = tiny_block(double_normalisation=True)
    expected = by_hand(block, x, embedding, lambda n, s, b: n * rms_normalised(s) + rms_normalised(b))
    torch.testing.assert_close(block(x, embedding), expected)
    with torch.no_grad():  # the modulation's size does not reach the output: the point of the change
        block.modulation.weight.mul_(10)
        block.modulation.bias.mul_(10)
    torch.testing.assert_close(block(x, embedding), expected)
    adaptive = tiny_block(double_normalisation=False)  # off: ADM's adaptive group norm, as before
    torch.testing.assert_close(adaptive(x, embedding), by_hand(adaptive, x, embedding, lambda n, s, b: n * (1 + s) + b))


def test_a_shift_only_block_gains_a_scale():
    plain, doubled = tiny_block(False, adaptive_scale=False), tiny_block(True, adaptive_scale=False)
    assert plain.modulation.out_features == 8 and doubled.modulation.out_features == 16
    x, embedding = torch.randn(2, 4, 5, 5, dtype=torch.float64), torch.randn(2, 6, dtype=torch.float64)
    torch.testing.assert_close(doubled(x, embedding), by_hand(doubled, x, embedding, lambda n, s, b: n * pixel_norm(s) + pixel_norm(b)))


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_off_by_default_the_networks_are_unchanged(name):
    torch.manual_seed(0)
    default = randomized(build(name, **SMALL)).eval()
    torch.manual_seed(0)
    off = randomized(build(name, **SMALL, double_normalisation=False)).eval()
    assert list(default.state_dict()) == list(off.state_dict())
    x, c_noise = torch.randn(2, 3, 32, 32), torch.tensor([-1.0, 0.5])
    assert torch.equal(default(x, c_noise), off(x, c_noise))
    assert not any(m.double_normalisation for m in default.modules() if isinstance(m, ResidualBlock))


def test_adm_has_the_same_parameters_and_other_outputs_with_the_option():
    with torch.device("meta"):  # the paper's ImageNet-64 configuration, shapes only
        assert count(build("adm", (3, 64, 64), label_dim=1000, double_normalisation=True)) == 295_899_267
    torch.manual_seed(0)
    off = randomized(build("adm", **SMALL)).eval()
    on = build("adm", **SMALL, double_normalisation=True).eval()
    on.load_state_dict(off.state_dict())  # the same names and shapes, so the same weights
    x, c_noise = torch.randn(2, 3, 32, 32), torch.tensor([-1.0, 0.5])
    assert not torch.allclose(on(x, c_noise), off(x, c_noise))


@pytest.mark.parametrize("name", ["ddpmpp", "ncsnpp"])
def test_song_unets_gain_only_the_scale_half_of_each_modulation(name):
    with torch.device("meta"):
        off, on = build(name, **SMALL), build(name, **SMALL, double_normalisation=True)
    assert list(off.state_dict()) == list(on.state_dict())
    blocks = [m for m in off.modules() if isinstance(m, ResidualBlock)]
    assert count(on) - count(off) == sum(b.modulation.weight.numel() + b.modulation.bias.numel() for b in blocks)


def test_forward_mode_ad_through_ncsnpp_matches_a_central_difference():
    # sCT's tangent dF/dt is one torch.func.jvp through the network
    torch.manual_seed(0)
    options = {**SMALL, "channels": 8, "attention_resolutions": (4,), "fourier_scale": 0.5, "double_normalisation": True}
    net = randomized(build("ncsnpp", (3, 8, 8), **options)).double().eval()
    x, c_noise = torch.randn(2, 3, 8, 8, dtype=torch.float64), torch.tensor([0.3, 1.2], dtype=torch.float64)
    dx, dc = torch.randn_like(x), torch.tensor([1.0, -0.5], dtype=torch.float64)
    _, tangent = torch.func.jvp(net, (x, c_noise), (dx, dc))
    h = 1e-6
    with torch.no_grad():
        difference = (net(x + h * dx, c_noise + h * dc) - net(x - h * dx, c_noise - h * dc)) / (2 * h)
    assert tangent.abs().max() > 1e-3
    torch.testing.assert_close(tangent, difference, rtol=1e-5, atol=1e-7)


def test_one_sct_step_on_ncsnpp_with_the_option_gives_a_finite_loss(registries, tmp_path):
    data = tiny_images(tmp_path)
    extra = ["network.double_normalisation=true", "train.log_every=1", "train.grid_every=0", "sample.num=2"]
    config = image_config(registries, data, "sct", steps=1, extra=extra)
    assert config.network.options.double_normalisation
    trainer = Trainer(config, RunFolder(tmp_path / "run"), registries)
    trainer.train()
    losses = [record["loss"] for record in RunFolder(tmp_path / "run").metrics()]
    assert len(losses) == 1 and math.isfinite(losses[0])

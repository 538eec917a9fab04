"""The image U-Nets of genkit_unet: paper sizes, shapes, gradients, labels, dropout, options."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import torch

import genkit_unet

from genkit.errors import GenkitError
from genkit.maths import ConsistencyFunction
from genkit.schema import Parser, to_plain
from genkit_unet.adm import ADM
from genkit_unet.song_unet import NCSNpp, SongUNet

NETWORKS = {"ddpmpp": SongUNet, "ncsnpp": NCSNpp, "adm": ADM}
SMALL = dict(channels=16, channel_multipliers=(1, 2), blocks_per_resolution=1, attention_resolutions=(16,))


def build(name: str, shape=(3, 32, 32), **options) -> torch.nn.Module:
    factory = NETWORKS[name]
    return factory(factory.Config(**options), SimpleNamespace(data_shape=shape))


def randomized(net: torch.nn.Module) -> torch.nn.Module:
    """Perturb every weight: the zero-initialized output layers would hide what the input changes."""
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return net


def count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# The figures NVlabs/edm's SongUNet and DhariwalUNet give for the same configurations (without
# their augmentation-label input, which adds 1,152 / 2,304 for CIFAR-10 with augment_dim = 9);
# the EDM paper rounds them to 56M (DDPM++, NCSN++) and 296M (ADM).
@pytest.mark.parametrize(
    "name, shape, options, parameters",
    [
        ("ddpmpp", (3, 32, 32), {}, 55_732_739),
        ("ncsnpp", (3, 32, 32), {}, 56_395_523),
        ("adm", (3, 64, 64), {"label_dim": 1000}, 295_899_267),
    ],
)
def test_paper_configurations_have_the_reference_parameter_counts(name, shape, options, parameters):
    with torch.device("meta"):  # shapes only: no memory, no initialization cost
        net = build(name, shape, **options)
    assert count(net) == parameters


def small_song(**options):
    return build("ddpmpp", **{**SMALL, **options})


@pytest.mark.parametrize("encoder", ["standard", "skip", "residual"])
@pytest.mark.parametrize("decoder", ["standard", "skip"])
@pytest.mark.parametrize("embedding, resample_filter", [("positional", (1, 1)), ("fourier", (1, 3, 3, 1))])
def test_song_unet_forward_backward_keeps_the_shape(encoder, decoder, embedding, resample_filter):
    net = small_song(encoder=encoder, decoder=decoder, embedding=embedding, resample_filter=resample_filter)
    assert_forward_backward(net, (2, 3, 32, 32))


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_one_channel_28_pixel_images(name):
    net = build(name, (1, 28, 28), **{**SMALL, "attention_resolutions": (14,)})
    assert_forward_backward(net, (2, 1, 28, 28))


def test_adm_forward_backward_keeps_the_shape():
    net = build("adm", **SMALL, channels_per_head=8)  # several heads
    assert torch.equal(net(torch.randn(2, 3, 32, 32), torch.zeros(2)), torch.zeros(2, 3, 32, 32))  # zero-init output
    assert_forward_backward(net, (2, 3, 32, 32))


def assert_forward_backward(net, shape):
    randomized(net)  # ADM's output layer starts at zero: no gradient would reach the input
    x = torch.randn(shape, requires_grad=True)
    out = net(x, torch.randn(shape[0]))
    assert out.shape == x.shape and torch.isfinite(out).all()
    out.square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_labels_condition_the_output(name):
    net = randomized(build(name, **SMALL, label_dim=10)).eval()
    x, c_noise = torch.randn(2, 3, 32, 32), torch.zeros(2)
    first = net(x, c_noise, torch.tensor([0, 1]))
    assert torch.equal(first, net(x, c_noise, torch.tensor([0, 1])))
    assert not torch.allclose(first, net(x, c_noise, torch.tensor([2, 3])))
    with pytest.raises(ValueError, match="needs labels"):
        net(x, c_noise)
    with pytest.raises(ValueError, match="class indices"):
        net(x, c_noise, torch.tensor([0.0, 1.0]))


def test_labels_for_an_unconditional_network_are_an_error():
    with pytest.raises(ValueError, match="unconditional"):
        small_song()(torch.randn(2, 3, 32, 32), torch.zeros(2), torch.tensor([0, 1]))


def test_consistency_boundary_condition_holds_exactly():
    f = ConsistencyFunction(randomized(build("ncsnpp", **SMALL)), sigma_min=0.002, sigma_data=0.5)
    x = torch.randn(3, 3, 32, 32)
    assert torch.equal(f(x, 0.002), x)
    assert not torch.allclose(f(x, 1.0), x)


@pytest.mark.parametrize("name", ["ncsnpp", "adm"])
def test_dropout_only_in_training_mode(name):
    net = randomized(build(name, **SMALL, dropout=0.5))
    x, c_noise = torch.randn(2, 3, 32, 32), torch.zeros(2)
    with torch.no_grad():
        net.train()
        assert not torch.allclose(net(x, c_noise), net(x, c_noise))
        net.eval()
        assert torch.equal(net(x, c_noise), net(x, c_noise))


def test_the_noise_level_changes_the_output():
    net = randomized(small_song()).eval()
    x = torch.randn(1, 3, 32, 32).expand(2, -1, -1, -1)
    out = net(x, torch.tensor([-1.0, 0.5]))
    assert not torch.allclose(out[0], out[1])


@pytest.mark.parametrize(
    "shape, text",
    [((3, 32, 16), "square"), ((2,), "square"), ((3, 36, 36), r"not divisible by 2\^3")],
)
def test_unsuitable_data_shapes_are_one_line_errors(shape, text):
    with pytest.raises(GenkitError, match=text):
        build("ncsnpp", shape, channels=16, channel_multipliers=(1, 1, 1, 1))


def test_the_plugin_registers_the_three_networks():
    registered = {}
    genkit_unet.register_networks(register=registered.__setitem__)
    assert registered == NETWORKS


def test_ncsnpp_and_ddpmpp_defaults_are_edms_cifar10_configurations():
    ddpmpp, ncsnpp = SongUNet.Config(), NCSNpp.Config()
    assert (ddpmpp.embedding, ddpmpp.encoder, ddpmpp.decoder, ddpmpp.resample_filter, ddpmpp.noise_channel_multiplier) == (
        "positional", "standard", "standard", (1, 1), 1
    )
    assert (ncsnpp.embedding, ncsnpp.encoder, ncsnpp.decoder, ncsnpp.resample_filter, ncsnpp.noise_channel_multiplier) == (
        "fourier", "residual", "standard", (1, 3, 3, 1), 2
    )
    assert (ncsnpp.channels, ncsnpp.channel_multipliers, ncsnpp.blocks_per_resolution) == (128, (2, 2, 2), 4)
    adm = ADM.Config()
    assert (adm.channels, adm.channel_multipliers, adm.blocks_per_resolution, adm.attention_resolutions) == (
        192, (1, 2, 3, 4), 3, (32, 16, 8)
    )


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_options_are_documented_and_round_trip_through_the_parser(name):
    factory = NETWORKS[name]
    assert all(spec.metadata.get("help") for spec in dataclasses.fields(factory.Config))
    options = Parser().options(factory, {"channels": 64, "attention_resolutions": [8, 4]}, "network")
    assert isinstance(options, factory.Config) and options.attention_resolutions == (8, 4)
    assert Parser().options(factory, to_plain(options), "network") == options


def test_bad_options_are_reported():
    with pytest.raises(GenkitError, match="even number of taps"):
        Parser().options(NCSNpp, {"resample_filter": [1, 2, 1]}, "network")
    with pytest.raises(GenkitError, match="dropout"):
        Parser().options(NCSNpp, {"dropout": 1.5}, "network")
    with pytest.raises(GenkitError, match="at least one level"):
        Parser().options(ADM, {"channel_multipliers": []}, "network")
    with pytest.raises(GenkitError, match="channels must be even"):
        Parser().options(SongUNet, {"channels": 15}, "network")
    with pytest.raises(GenkitError, match="encoder"):
        Parser().options(SongUNet, {"encoder": "fancy"}, "network")


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_a_second_time_input_is_an_option_that_starts_ignored(name):
    torch.manual_seed(0)
    one = build(name, **SMALL)
    torch.manual_seed(0)
    two = build(name, **SMALL, second_time=True)
    mine, theirs = two.state_dict(), one.state_dict()
    assert {key for key in mine if key not in theirs} == {key for key in mine if key.startswith("embed_second.")}
    assert all(torch.equal(mine[key], value) for key, value in theirs.items())  # the same weights besides
    x, c = torch.randn(2, 3, 32, 32), torch.tensor([-1.0, 0.5])
    one.eval(), two.eval()
    torch.testing.assert_close(two(x, c, c_second=c), one(x, c))  # zero-initialised: the same network at first
    randomized(two)
    assert not torch.allclose(two(x, c, c_second=c), two(x, c, c_second=c + 0.5))
    with pytest.raises(ValueError, match="takes a second time input"):
        two(x, c)
    with pytest.raises(ValueError, match="no second time input"):
        one(x, c, c_second=c)

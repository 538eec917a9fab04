"""The lpips loss: plumbing with a random VGG backbone (pnet_rand=True, nothing downloaded), the
upsampling to 224x224, the offline error before training starts, and non-image data refused."""

import urllib.error
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import genkit_losses.lpips_metric as lpips_metric
from genkit.cli.main import build_app
from genkit.errors import GenkitError
from genkit_losses.lpips_metric import LPIPS, VGG16_FILE


def image_ctx(shape=(3, 8, 8)):
    return SimpleNamespace(data_shape=shape, device=torch.device("cpu"))


@pytest.fixture(scope="module")
def metric():
    """LPIPS with a random VGG trunk: tests the plumbing, not perception."""
    torch.manual_seed(0)
    return LPIPS(LPIPS.Config(pretrained=False), image_ctx())


@pytest.fixture
def seen_sizes(metric, monkeypatch):
    """The spatial sizes of the images the VGG network is given."""
    sizes = []
    forward = metric.net.net.forward

    def spy(x):
        sizes.append(tuple(x.shape[-3:]))
        return forward(x)

    monkeypatch.setattr(metric.net.net, "forward", spy)
    return sizes


def test_lpips_is_registered(registries):
    assert registries.losses.get("lpips") is LPIPS


def test_per_sample_shape_zero_for_identical_and_positive_otherwise(metric, seen_sizes):
    torch.manual_seed(1)
    a = torch.rand(2, 3, 8, 8) * 2 - 1
    b = (a + 0.3 * torch.randn_like(a)).clamp(-1, 1)
    same = metric(a, a)
    different = metric(a, b)
    assert same.shape == different.shape == (2,)
    torch.testing.assert_close(same, torch.zeros(2))
    assert torch.all(different > 0)
    assert seen_sizes and set(seen_sizes) == {(3, 224, 224)}  # 8x8 was upsampled


def test_gradient_reaches_the_prediction_but_not_the_metric(metric):
    a = (torch.rand(1, 3, 8, 8) * 2 - 1).requires_grad_()
    metric(a, torch.zeros(1, 3, 8, 8)).sum().backward()
    assert a.grad is not None and a.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in metric.net.parameters())


def test_grayscale_images_use_three_equal_channels(metric, seen_sizes):
    a, b = torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8)
    torch.testing.assert_close(metric(a, b), metric(a.expand(-1, 3, -1, -1), b.expand(-1, 3, -1, -1)))


def test_upsampling_is_bilinear_to_224_only_when_smaller():
    small = torch.rand(2, 3, 32, 32)
    up = lpips_metric.upsample(small)
    assert up.shape == (2, 3, 224, 224)
    torch.testing.assert_close(up, nn.functional.interpolate(small, size=(224, 224), mode="bilinear", align_corners=False))
    large = torch.rand(1, 3, 256, 256)
    assert lpips_metric.upsample(large) is large


def test_the_metric_is_not_a_module_so_vgg_stays_out_of_checkpoints(metric):
    assert not isinstance(metric, nn.Module)


def test_non_image_data_is_refused():
    with pytest.raises(GenkitError, match=r"images .* shape \(2,\); on such data use l2"):
        LPIPS(LPIPS.Config(pretrained=False), image_ctx((2,)))


def test_lpips_on_toy_data_fails_before_training_from_the_command_line(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(build_app(), ["train", "--method", "ct", "--set", "methods.ct.loss=lpips", "--out", str(out)])
    assert result.exit_code == 1
    assert result.output.startswith("error:") and "use l2, l1 or pseudo-huber" in result.output
    assert not (out / "checkpoint.pt").exists()


# ----------------------------------------------------------------------------- offline


def offline(*args, **kwargs):
    raise urllib.error.URLError("[Errno -2] Name or service not known")


def test_offline_error_names_the_file_and_the_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(lpips_metric, "download", offline)
    with pytest.raises(GenkitError) as caught:
        LPIPS(LPIPS.Config(pretrained=True), image_ctx())
    message = str(caught.value)
    assert "\n" not in message
    assert VGG16_FILE in message and str(tmp_path / "hub" / "checkpoints") in message
    assert lpips_metric.VGG16_URL in message and "Name or service not known" in message


def test_weights_already_in_place_are_not_downloaded(tmp_path, monkeypatch):
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / VGG16_FILE).write_bytes(b"")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(lpips_metric, "download", offline)
    assert lpips_metric.ensure_backbone_weights() == folder / VGG16_FILE


def test_random_backbone_needs_no_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(lpips_metric, "download", offline)
    monkeypatch.setattr(lpips_metric, "make_network", lambda pretrained: nn.Identity())
    LPIPS(LPIPS.Config(pretrained=False), image_ctx())  # no error: nothing to fetch


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_lpips_runs_on_the_runs_device():
    metric = LPIPS(LPIPS.Config(pretrained=False), SimpleNamespace(data_shape=(3, 8, 8), device=torch.device("cuda")))
    a = torch.rand(2, 3, 8, 8, device="cuda") * 2 - 1
    distance = metric(a, a.flip(0))
    assert distance.shape == (2,) and distance.device.type == "cuda"

"""FID and precision/recall in Inception features (clean-fid), run offline: a small random torch
module stands in for Inception, and a tiny scripted network for the Inception weights file."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import cleanfid.downloads_helper
from cleanfid.fid import frechet_distance as cleanfid_frechet_distance

from genkit.errors import GenkitError
from genkit.evaluation import frechet_distance, gaussian_stats
from genkit_fid import fid as fid_module
from genkit_fid.fid import FID, PrecisionRecallInception
from genkit_images.datasets import NpzImages

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning"),  # the scripted stand-in for Inception
    pytest.mark.filterwarnings("ignore:The `disp` argument:DeprecationWarning"),  # scipy, in clean-fid's frechet_distance
]

URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"


class RandomFeatures(nn.Module):
    """64-d features of (N, 3, S, S) images in [0, 255]; counts its calls."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.AdaptiveAvgPool2d(8), nn.Flatten(), nn.Linear(192, 64), nn.Tanh())
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.net(x / 128 - 1)


class FakeInception(nn.Module):
    """The interface of clean-fid's torchscript Inception: ``base(x, return_features=True)``
    resizes inside, ``base.layers`` takes normalized 299x299 images; 2048 features."""

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, 2048))

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return self.layers((x - 128) / 128)


def offline(*args, **kwargs):
    raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No network, no weights anywhere, a fresh statistics cache."""
    monkeypatch.setenv("GENKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GENKIT_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr(fid_module, "CLEANFID_FOLDER", tmp_path / "cleanfid")
    monkeypatch.setattr(cleanfid.downloads_helper, "check_download_inception", offline)
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    fid_module.inception.cache_clear()


def noise_images(path: Path, count: int = 120, seed: int = 0) -> Path:
    images = np.random.default_rng(seed).integers(0, 256, size=(count, 16, 16, 1), dtype=np.uint8)
    np.savez(path, images=images)
    return path


@pytest.fixture
def data(tmp_path):
    """A tiny grey dataset (random pixels, 16x16) and its options as a run records them."""
    path = noise_images(tmp_path / "noise.npz")
    return NpzImages(NpzImages.Config(path=path)), {"name": "npz", "path": str(path)}


def training_images(dataset) -> torch.Tensor:
    return torch.cat(list(dataset.training_images()))


def test_samples_are_quantized_as_png_saving_would_and_grey_becomes_rgb(data):
    dataset, _ = data
    stored = torch.from_numpy(np.load(dataset_path(data))["images"]).permute(0, 3, 1, 2)
    pixels = fid_module.to_uint8(training_images(dataset))
    assert pixels.dtype == torch.uint8 and pixels.shape == (120, 3, 16, 16)
    assert torch.equal(pixels, stored.expand(-1, 3, -1, -1))
    assert fid_module.to_uint8(torch.tensor([-1.5, -1.0, 0.0, 0.999, 1.0]).view(1, 1, 1, 5)).flatten()[:5].tolist() == [0, 0, 128, 255, 255]


def dataset_path(data) -> str:
    return data[1]["path"]


@pytest.mark.parametrize("mode", ["legacy_tensorflow", "clean"])
def test_identical_sets_score_zero_and_the_distance_is_clean_fids(data, mode):
    dataset, options = data
    evaluator = FID(FID.Config(mode=mode, batch_size=50), feature_extractor=RandomFeatures())
    evaluator.prepare(dataset, options)
    images = training_images(dataset)
    assert evaluator(images) == pytest.approx(0, abs=1e-6)

    other = images.flip(-1)[:100] * 0.8
    ours = evaluator(other)
    fake = evaluator.features(other).numpy()
    assert fake.shape == (100, 64)
    mu, cov = evaluator.reference_stats
    theirs = cleanfid_frechet_distance(fake.mean(0), np.cov(fake, rowvar=False), mu, cov)
    assert ours > 0.01 and ours == pytest.approx(theirs, rel=1e-6)
    assert frechet_distance(*gaussian_stats(torch.from_numpy(fake)), mu, cov) == pytest.approx(theirs, rel=1e-6)
    if mode == "legacy_tensorflow":  # unprepared: against the reference's features
        unprepared = FID(FID.Config(mode=mode), feature_extractor=RandomFeatures())
        assert unprepared(other, images) == pytest.approx(ours, rel=1e-6)


def test_statistics_are_computed_once_per_key(data, tmp_path):
    dataset, options = data
    net = RandomFeatures()
    FID(FID.Config(batch_size=64), feature_extractor=net).prepare(dataset, options)
    first = net.calls
    assert first == 2  # 120 training images in batches of 64, once
    FID(FID.Config(batch_size=64), feature_extractor=net).prepare(dataset, options)
    pr = PrecisionRecallInception(PrecisionRecallInception.Config(batch_size=64), feature_extractor=net)
    pr.prepare(dataset, options)  # stored by fid's pass over the training set
    assert net.calls == first and pr.real.shape == (120, 64)
    FID(FID.Config(batch_size=64, mode="clean"), feature_extractor=net).prepare(dataset, options)
    assert net.calls == 2 * first
    FID(FID.Config(batch_size=64), feature_extractor=net).prepare(dataset, {**options, "flip": True})
    assert net.calls == 3 * first
    FID(FID.Config(batch_size=64), feature_extractor=RandomFeatures(seed=1)).prepare(dataset, options)  # other weights
    assert len(list((tmp_path / "cache" / "stats").glob("*.npz"))) == 8  # fid and pr entries of 4 keys


def test_without_weights_offline_one_error_names_both_ways_and_the_url(data, tmp_path, capsys):
    dataset, options = data
    evaluator = FID()  # building needs no weights: only preparing or scoring does
    for use in (lambda: evaluator.prepare(dataset, options), lambda: evaluator(training_images(dataset)),
                lambda: PrecisionRecallInception().prepare(dataset, options)):
        with pytest.raises(GenkitError) as caught:
            use()
        message = str(caught.value)
        assert "\n" not in message and caught.value.__cause__ is None and caught.value.__suppress_context__
        for fragment in ("weights", "GENKIT_INCEPTION_WEIGHTS", URL, "could not be downloaded"):
            assert fragment in message, message
    assert capsys.readouterr() == ("", "")
    assert not list((tmp_path / "cleanfid").iterdir())  # no half-downloaded file left behind
    assert fid_module.inception_url() == URL


@pytest.fixture
def weights_file(tmp_path) -> Path:
    path = tmp_path / "weights" / "my-inception.pt"
    path.parent.mkdir()
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(FakeInception()), str(path))
    return path


@pytest.mark.parametrize("how", ["option", "environment", "download"])
def test_inception_weights_come_from_the_option_the_environment_or_clean_fids_download(data, weights_file, how, monkeypatch, tmp_path):
    dataset, options = data
    weights = None
    if how == "option":
        weights = weights_file
    elif how == "environment":
        monkeypatch.setenv("GENKIT_INCEPTION_WEIGHTS", str(weights_file))
    else:
        def download(fpath):
            target = Path(fpath) / "inception-2015-12-05.pt"
            target.write_bytes(weights_file.read_bytes())
            return str(target)

        monkeypatch.setattr(cleanfid.downloads_helper, "check_download_inception", download)
    evaluator = FID(FID.Config(weights=weights, batch_size=64))
    evaluator.prepare(dataset, options)
    assert evaluator.reference_stats[0].shape == (2048,)
    assert evaluator.features(training_images(dataset)[:3]).shape == (3, 2048)
    clean = PrecisionRecallInception(PrecisionRecallInception.Config(weights=weights, mode="clean"))
    assert clean.features(training_images(dataset)[:2]).shape == (2, 2048)  # 299x299 without resizing inside
    if how == "download":
        assert [p.name for p in (tmp_path / "cleanfid").iterdir()] == ["inception-2015-12-05.pt"]
    assert evaluator.features.key().startswith("inception-2015-12-05.pt:sha256:")


def test_a_missing_or_broken_weights_file_is_one_error(data, tmp_path, monkeypatch):
    dataset, options = data
    with pytest.raises(GenkitError, match="not found at .*nowhere.pt .*evaluator option weights"):
        FID(FID.Config(weights=tmp_path / "nowhere.pt")).prepare(dataset, options)
    monkeypatch.setenv("GENKIT_INCEPTION_WEIGHTS", str(tmp_path / "nowhere.pt"))
    with pytest.raises(GenkitError, match="GENKIT_INCEPTION_WEIGHTS"):
        FID().prepare(dataset, options)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a network")
    with pytest.raises(GenkitError, match="could not load the Inception weights"):
        FID(FID.Config(weights=broken)).prepare(dataset, options)


def test_points_and_odd_images_are_refused():
    for evaluator in (FID(), PrecisionRecallInception()):
        refusal = evaluator.accepts(SimpleNamespace(shape=(2,)))
        assert refusal and "\n" not in refusal and "(2,)" in refusal
        assert evaluator.accepts(SimpleNamespace(shape=(3, 32, 16)))
        assert evaluator.accepts(SimpleNamespace(shape=(4, 32, 32)))
        assert evaluator.accepts(SimpleNamespace(shape=(1, 32, 32))) == ""
        assert evaluator.accepts(SimpleNamespace(shape=(3, 64, 64))) == ""


def test_precision_and_recall_in_inception_features(data, tmp_path):
    dataset, options = data
    evaluator = PrecisionRecallInception(PrecisionRecallInception.Config(batch_size=64), feature_extractor=RandomFeatures())
    evaluator.prepare(dataset, options)
    same = evaluator(training_images(dataset))
    assert same == {"precision": 1.0, "recall": 1.0}
    other = NpzImages(NpzImages.Config(path=noise_images(tmp_path / "other.npz", count=120, seed=1)))
    scores = evaluator(training_images(other) * 0.5)
    assert set(scores) == {"precision", "recall"} and all(0 <= v <= 1 for v in scores.values())
    assert scores["precision"] < 1 or scores["recall"] < 1

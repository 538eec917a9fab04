"""Every method trains and samples on images: U-Net, image data stream, grids, PNGs, labels."""

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import genkit
from genkit import config as configuration
from genkit.errors import GenkitError
from genkit.training.loop import Trainer
from genkit.training.run import RunFolder

from conftest import assert_same_tensors


def tiny_images(tmp_path: Path, count: int = 100, classes: int = 3) -> Path:
    """``count`` 16x16 grayscale images in an .npz, with labels: bright squares on black."""
    generator = np.random.default_rng(0)
    images = np.zeros((count, 16, 16, 1), dtype=np.uint8)
    for i in range(count):
        top, left = generator.integers(0, 8, size=2)
        images[i, top : top + 8, left : left + 8] = 255
    path = tmp_path / "squares.npz"
    np.savez(path, images=images, labels=generator.integers(0, classes, size=count))
    return path


def image_config(registries, data: Path, method: str = "ict", steps: int = 4, extra=()):
    sets = [
        "data.name=npz", f"data.path={data}", "data.labels=false",
        "network.name=ncsnpp", "network.channels=8", "network.channel_multipliers=[1, 2]",
        "network.blocks_per_resolution=1", "network.attention_resolutions=[]",
        "train.batch_size=16", "train.log_every=2", "train.checkpoint_every=4", "train.grid_every=4",
        "sample.grid_size=4", "sample.num=8",
        "methods.cd.loss=pseudo-huber", "methods.ct.loss=pseudo-huber",
        *extra,
    ]
    return configuration.load_config(registries, "fmnist", assignments=sets, flags={"method": method, "train.steps": steps})


@pytest.fixture
def data(tmp_path):
    return tiny_images(tmp_path)


def test_every_method_trains_on_images_and_draws_a_grid(registries, data, tmp_path):
    for method in ("edm", "ict", "ct"):
        Trainer(image_config(registries, data, method), RunFolder(tmp_path / method), registries).train()
    cd = image_config(registries, data, "cd", extra=[f"methods.cd.teacher.run={tmp_path / 'edm'}"])
    Trainer(cd, RunFolder(tmp_path / "cd"), registries).train()
    for method in ("edm", "ict", "ct", "cd"):
        assert (tmp_path / method / "grids" / "step-0000004.png").is_file()
        samples = genkit.load(tmp_path / method).sample(3, seed=1)
        assert samples.shape == (3, 1, 16, 16) and samples.abs().max() <= 1


def test_an_image_run_resumes_exactly_mid_epoch_with_flips(registries, data, tmp_path):
    config = image_config(registries, data, "ict", steps=10, extra=["data.flip=true", "network.dropout=0.1", "train.grid_every=0"])
    straight = Trainer(config, RunFolder(tmp_path / "straight"), registries)
    straight.train()
    Trainer(config, RunFolder(tmp_path / "resumed"), registries).train(until=5)  # 100 images, batch 16: mid-epoch
    resumed = Trainer(config, RunFolder(tmp_path / "resumed"), registries, resume=True)
    assert resumed.batches.state_dict()["batches"] == 5
    resumed.train()
    assert_same_tensors(straight.method.state_dict(), resumed.method.state_dict())
    assert_same_tensors(straight.ema.state_dict(), resumed.ema.state_dict())


def test_samples_do_not_depend_on_the_batch_size(registries, data, tmp_path):
    Trainer(image_config(registries, data, "ict"), RunFolder(tmp_path / "run"), registries).train()
    model = genkit.load(tmp_path / "run")
    for steps in (1, 2):
        torch.testing.assert_close(model.sample(7, steps, batch_size=7), model.sample(7, steps, batch_size=3), rtol=0, atol=1e-5)


def test_class_labels_reach_the_network_in_training_and_sampling(registries, data, tmp_path):
    conditional = ["data.labels=true", "network.label_dim=3"]
    Trainer(image_config(registries, data, "ict", extra=conditional), RunFolder(tmp_path / "run"), registries).train()
    model = genkit.load(tmp_path / "run")
    assert model.network.net.label_dim == 3
    torch.manual_seed(0)  # weights away from their initial near-zero output layer, so labels show
    with torch.no_grad():
        for parameter in model.network.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    by_class = [model.sample(2, seed=5, label=c) for c in range(3)]
    assert not torch.allclose(by_class[0], by_class[1])
    unconditional_net = image_config(registries, data, extra=["data.labels=true"])
    with pytest.raises(GenkitError, match="the data has 3 classes of labels but network 'ncsnpp' is built for 0"):
        Trainer(unconditional_net, RunFolder(tmp_path / "bad"), registries)


def test_sample_writes_a_grid_and_one_png_per_seed(registries, data, tmp_path):
    from genkit.cli.main import build_app

    Trainer(image_config(registries, data, "ict"), RunFolder(tmp_path / "run"), registries).train()
    result = CliRunner().invoke(build_app(), ["sample", str(tmp_path / "run"), "--num", "5", "--seed", "0", "--png-dir", str(tmp_path / "pngs"), "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "pngs").iterdir()) == [f"{k:06d}.png" for k in range(5)]
    assert (tmp_path / "run" / "samples" / "1step-seed0.png").is_file()


def test_the_image_presets_resolve_with_the_papers_networks(registries):
    from genkit.build import build

    cifar = configuration.load_config(registries, "cifar10")
    assert cifar.network.name == "ncsnpp" and cifar.network.options.dropout == 0.3
    imagenet = configuration.load_config(registries, "imagenet64")
    assert imagenet.network.name == "adm" and imagenet.network.options.label_dim == 1000
    fmnist = configuration.load_config(registries, "fmnist")
    if not Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    built = build(fmnist, registries)
    assert built.dataset.shape == (1, 32, 32)
    assert sum(p.numel() for p in built.method.model.parameters()) == pytest.approx(1.28e6, rel=0.05)

"""Zero-shot editing (Song et al. 2023, Algorithm 4): the known part of the data is kept exactly,
the operators are orthogonal, interpolation ends are the one-step samples, bad inputs are one line."""

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import genkit
from genkit import config as configuration
from genkit.errors import GenkitError
from genkit.maths import PerSampleNoise, consistency_sample
from genkit_edit.maths import Replacement, edit_sample, identity, luminance_basis, patch_basis, slerp
from genkit.training.loop import Trainer
from genkit.training.run import RunFolder

import genkit_edit  # noqa: F401  (the plugin under test)
from genkit_edit.tasks import Colorize, Inpaint, SuperResolution

RESOLUTION = 16


def tiny_run(folder: Path, registries, channels: int) -> Path:
    """A 16x16 NCSN++ with 8 channels trained for one step on coloured squares."""
    generator = np.random.default_rng(0)
    images = np.zeros((16, RESOLUTION, RESOLUTION, channels), dtype=np.uint8)
    for image in images:
        top, left = generator.integers(0, 8, size=2)
        image[top : top + 8, left : left + 8] = generator.integers(64, 256, size=channels)
    folder.mkdir(parents=True)
    np.savez(folder / "squares.npz", images=images)
    sets = [
        "data.name=npz", f"data.path={folder / 'squares.npz'}", "data.labels=false",
        "network.name=ncsnpp", "network.channels=8", "network.channel_multipliers=[1, 2]",
        "network.blocks_per_resolution=1", "network.attention_resolutions=[]",
        "train.batch_size=8", "train.log_every=1", "train.checkpoint_every=1", "train.grid_every=0",
        "sample.batch_size=16",
    ]
    config = configuration.load_config(registries, "fmnist", assignments=sets, flags={"method": "ict", "train.steps": 1})
    Trainer(config, RunFolder(folder / "run"), registries).train()
    return folder / "run"


@pytest.fixture(scope="module")
def runs(registries, tmp_path_factory):
    root = tmp_path_factory.mktemp("edit-runs")
    return {channels: tiny_run(root / f"c{channels}", registries, channels) for channels in (1, 3)}


def perturbed(run: Path):
    """The run loaded, its weights moved away from the near-zero output layer of a fresh U-Net,
    so the consistency function's outputs are far from its input."""
    model = genkit.load(run, "cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.network.parameters():
            parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
    return model


@pytest.fixture(scope="module")
def colour(runs):
    return perturbed(runs[3])


@pytest.fixture(scope="module")
def gray(runs):
    return perturbed(runs[1])


def images(model, num: int = 3, seed: int = 7) -> torch.Tensor:
    """Inputs unlike the model's samples: random pixels in [-0.9, 0.9] at the model's shape."""
    generator = torch.Generator().manual_seed(seed)
    shape = model.trained.built.ctx.data_shape
    return (torch.rand(num, *shape, generator=generator) * 1.8 - 0.9)


def write_png(path: Path, array: np.ndarray) -> Path:
    from PIL import Image

    Image.fromarray(array).save(path)
    return path


# ----------------------------------------------------------------------------- the operators


def test_the_orthogonal_transforms_are_orthogonal_and_invert_exactly():
    for weights in ((1, 1, 1), (0.299, 0.587, 0.114)):
        q = luminance_basis(weights)
        torch.testing.assert_close(q @ q.T, torch.eye(3, dtype=torch.float64), rtol=0, atol=1e-12)
        torch.testing.assert_close(q[0], torch.tensor(weights, dtype=torch.float64) / torch.tensor(weights, dtype=torch.float64).norm())
    for k in (2, 3, 4):
        h = patch_basis(k)
        torch.testing.assert_close(h @ h.T, torch.eye(k * k, dtype=torch.float64), rtol=0, atol=1e-12)
        torch.testing.assert_close(h[0], torch.full((k * k,), 1 / k, dtype=torch.float64))
    x = torch.randn(2, 3, 12, 12, dtype=torch.float64)
    for task in (Inpaint(), Colorize(), Colorize(Colorize.Config(luminance="rec601")), SuperResolution(SuperResolution.Config(factor=2)),
                 SuperResolution(SuperResolution.Config(factor=3)), SuperResolution(SuperResolution.Config(factor=4))):
        a = task.to_space(x)
        torch.testing.assert_close(task.from_space(a), x, rtol=0, atol=1e-12)
        torch.testing.assert_close(a.norm(), x.norm(), rtol=1e-12, atol=0)  # orthogonal: lengths kept
    patches = SuperResolution(SuperResolution.Config(factor=4)).to_space(x)  # first coordinate: k times the average
    torch.testing.assert_close(patches[..., 0] / 4, torch.nn.functional.avg_pool2d(x, 4), rtol=0, atol=1e-12)


def test_with_nothing_known_algorithm_4_is_the_multistep_sampler():
    """y = 0 and Omega = 1: Algorithm 4 reduces to Algorithm 1, draw for draw."""
    f = lambda x, sigma: torch.tanh(x / (1 + sigma)) + 0.1 * torch.sin(3 * x)
    shape, seeds = (1, 8, 8), [3, 4]
    nothing = Replacement(identity, identity, torch.zeros(shape, dtype=torch.bool))
    edited = edit_sample(f, torch.zeros(2, *shape), nothing, [80.0, 0.821], PerSampleNoise(seeds), 0.002, (-1, 1))
    sampled = consistency_sample(f, PerSampleNoise(seeds), shape, 80.0, 0.002, [0.821], (-1, 1))
    torch.testing.assert_close(edited, sampled, rtol=0, atol=0)


def test_slerp_ends_are_exact_and_its_path_keeps_the_length():
    z0, z1 = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    assert torch.equal(slerp(z0, z1, 0.0), z0) and torch.equal(slerp(z0, z1, 1.0), z1)
    orthogonal = z1 - (z1 * z0).sum() / (z0 * z0).sum() * z0  # norms equal and at right angles: the norm stays
    a, b = z0[:1], orthogonal[:1] * z0[:1].norm() / orthogonal[:1].norm()
    torch.testing.assert_close(slerp(a, b, 0.3).norm(), a.norm(), rtol=1e-5, atol=0)


# ----------------------------------------------------------------------------- the known part is kept


@pytest.mark.parametrize("mask_name", ["left-half", "centre-box", "strokes"])
def test_inpainting_keeps_the_known_pixels_and_fills_the_rest(colour, mask_name):
    y = images(colour)
    result = genkit_edit.edit(colour, "inpaint", y, steps=2, mask_name=mask_name, mask_seed=3)
    fill = Inpaint(Inpaint.Config(mask_name=mask_name, mask_seed=3)).named_mask(RESOLUTION, RESOLUTION)
    assert 0 < int(fill.sum()) < fill.numel()
    keep = ~fill.expand_as(y)
    torch.testing.assert_close(result.results[keep], y[keep], rtol=0, atol=1e-6)
    assert (result.results[~keep] - y[~keep]).abs().mean() > 0.05
    assert torch.equal(result.degraded[~keep], torch.zeros_like(y[~keep]))  # what the sampler knew: holes at 0
    assert result.sigmas == [80.0, 0.821]


def test_inpainting_reads_a_mask_image_white_to_fill(colour, tmp_path):
    y = images(colour, 2)
    array = np.zeros((RESOLUTION, RESOLUTION), dtype=np.uint8)
    array[2:9, 4:14] = 255
    result = genkit_edit.edit(colour, "inpaint", y, mask=write_png(tmp_path / "mask.png", array))
    fill = torch.from_numpy(array > 0).expand_as(y)
    torch.testing.assert_close(result.results[~fill], y[~fill], rtol=0, atol=1e-6)
    assert (result.results[fill] - y[fill]).abs().mean() > 0.05


def test_colorize_keeps_the_luminance_and_changes_the_colour(colour):
    y = images(colour)
    for luminance in ("equal", "rec601"):
        result = genkit_edit.edit(colour, "colorize", y, steps=2, luminance=luminance)
        task = Colorize(Colorize.Config(luminance=luminance))
        torch.testing.assert_close(task.to_space(result.results)[:, 0], task.to_space(y)[:, 0], rtol=0, atol=1e-5)
        assert (task.to_space(result.results)[:, 1:] - task.to_space(y)[:, 1:]).abs().mean() > 0.05
    torch.testing.assert_close(Colorize().to_space(y)[:, 0], y.sum(1) / 3**0.5)  # 'equal': the axis (R + G + B) / sqrt(3)


@pytest.mark.parametrize("factor", [2, 4])
def test_superres_keeps_the_patch_averages_from_a_full_or_a_small_input(colour, factor):
    y = images(colour)
    full = genkit_edit.edit(colour, "superres", y, steps=2, factor=factor)
    average = torch.nn.functional.avg_pool2d(y, factor)
    torch.testing.assert_close(torch.nn.functional.avg_pool2d(full.results, factor), average, rtol=0, atol=1e-5)
    assert (full.results - y).abs().mean() > 0.05
    small = genkit_edit.edit(colour, "superres", average, steps=2, factor=factor)  # the low-resolution image itself
    torch.testing.assert_close(small.results, full.results, rtol=0, atol=1e-5)
    blocky = average.repeat_interleave(factor, -2).repeat_interleave(factor, -1)
    torch.testing.assert_close(full.degraded, blocky, rtol=0, atol=1e-5)


def test_stroke_and_denoise_start_at_their_level_and_put_nothing_back(colour):
    y = images(colour, 2)
    stroke = genkit_edit.edit(colour, "stroke", y, steps=2, sigma_start=5.0)
    assert stroke.sigmas == [5.0, 0.821] and torch.equal(stroke.degraded, y)
    assert (stroke.results - y).abs().mean() > 0.05
    denoised = genkit_edit.edit(colour, "denoise", y, sigma=0.4)  # one step from the input itself
    torch.testing.assert_close(denoised.results, colour.network(y, torch.tensor(0.4)).clamp(-1, 1), rtol=0, atol=1e-6)
    noisy = genkit_edit.edit(colour, "denoise", y, steps=2, levels=[0.1], sigma=0.4, add_noise=True)
    assert noisy.sigmas == [0.4, 0.1] and 0.3 < float((noisy.degraded - y).std()) < 0.5


def test_edits_do_not_depend_on_the_batch_size(colour):
    y = images(colour, 5)
    one = genkit_edit.edit(colour, "colorize", y, steps=2, seed=4, batch_size=2)
    other = genkit_edit.edit(colour, "colorize", y, steps=2, seed=4, batch_size=5)
    torch.testing.assert_close(one.results, other.results, rtol=0, atol=1e-5)
    assert not torch.allclose(one.results, genkit_edit.edit(colour, "colorize", y, steps=2, seed=5).results)


def test_a_plugin_task_says_only_what_is_known(colour):
    class KeepTopRows(genkit_edit.EditTask):
        def known(self, y, mask=None):
            known = torch.zeros_like(y, dtype=torch.bool)
            known[..., :4, :] = True
            return known

    y = images(colour, 2)
    result = genkit_edit.edit(colour, KeepTopRows(), y, steps=2)
    torch.testing.assert_close(result.results[..., :4, :], y[..., :4, :], rtol=0, atol=1e-6)
    assert result.task == "KeepTopRows" and (result.results[..., 4:, :] - y[..., 4:, :]).abs().mean() > 0.05


def test_interpolation_ends_are_the_one_step_samples_of_the_two_seeds(colour):
    result = genkit_edit.edit(colour, "interpolate", seed=3, frames=5, pairs=2)
    assert result.results.shape == (2, 5, 3, RESOLUTION, RESOLUTION)
    samples = colour.sample(4, 1, seed=3)  # pair k joins samples 2k and 2k + 1
    for k in range(2):
        torch.testing.assert_close(result.results[k, 0], samples[2 * k], rtol=0, atol=1e-5)
        torch.testing.assert_close(result.results[k, -1], samples[2 * k + 1], rtol=0, atol=1e-5)
        middle = result.results[k, 2]
        assert (middle - samples[2 * k]).abs().mean() > 0.01 and (middle - samples[2 * k + 1]).abs().mean() > 0.01


def test_interpolation_between_two_inputs(colour):
    y0, y1 = images(colour, 2, seed=1), images(colour, 2, seed=2)
    result = genkit_edit.edit(colour, "interpolate", y0, y1, frames=3, sigma_start=1.0)
    assert result.results.shape == (2, 3, 3, RESOLUTION, RESOLUTION) and result.inputs.shape == (2, 2, 3, RESOLUTION, RESOLUTION)
    noise = PerSampleNoise([0, 1]).randn(3, RESOLUTION, RESOLUTION)  # seed 0: pair 0 joins per-sample seeds 0 and 1
    end = colour.network(y0[:1] + 1.0 * noise[:1], torch.tensor(1.0)).clamp(-1, 1)
    torch.testing.assert_close(result.results[0, 0], end[0], rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------- errors


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_bad_inputs_are_one_line_errors(colour, gray, tmp_path):
    with pytest.raises(GenkitError) as error:
        genkit_edit.edit(gray, "colorize", images(gray))
    assert one_line(error) == "colorize needs a colour model; this run's images have 1 channel"
    rgb = write_png(tmp_path / "rgb.png", np.random.default_rng(0).integers(0, 256, (RESOLUTION, RESOLUTION, 3), dtype=np.uint8))
    with pytest.raises(GenkitError, match="colour image but the model draws grayscale.*--convert") as error:
        genkit_edit.edit(gray, "inpaint", rgb)
    one_line(error)
    assert genkit_edit.edit(gray, "inpaint", rgb, convert=True).results.shape == (1, 1, RESOLUTION, RESOLUTION)
    luma = write_png(tmp_path / "gray.png", np.full((RESOLUTION, RESOLUTION), 90, dtype=np.uint8))
    with pytest.raises(GenkitError, match="grayscale image but the model draws colour.*--convert"):
        genkit_edit.edit(colour, "inpaint", luma)
    assert genkit_edit.edit(colour, "colorize", luma).results.shape == (1, 3, RESOLUTION, RESOLUTION)  # colorize takes gray
    big = write_png(tmp_path / "big.png", np.zeros((20, 24, 3), dtype=np.uint8))
    with pytest.raises(GenkitError, match=r"big.png is 24x20 but the model's images are 16x16; pass --resize") as error:
        genkit_edit.edit(colour, "inpaint", big)
    one_line(error)
    assert genkit_edit.edit(colour, "inpaint", big, resize=True).results.shape == (1, 3, RESOLUTION, RESOLUTION)
    mask = write_png(tmp_path / "mask.png", np.zeros((8, 8), dtype=np.uint8))
    with pytest.raises(GenkitError, match=r"mask .*mask.png is 8x8 but the images are 16x16") as error:
        genkit_edit.edit(colour, "inpaint", images(colour, 1), mask=mask)
    one_line(error)
    with pytest.raises(GenkitError, match=r"3 steps need 2 levels after the first; the run's sample.multistep_sigmas gives 1: \[0.821\]"):
        genkit_edit.edit(colour, "inpaint", images(colour, 1), steps=3)
    with pytest.raises(GenkitError, match="unknown key 'superres.factr'"):
        genkit_edit.edit(colour, "superres", images(colour, 1), factr=2)
    with pytest.raises(GenkitError, match="superres factor 3 does not divide"):
        genkit_edit.edit(colour, "superres", images(colour, 1), factor=3)
    with pytest.raises(GenkitError, match="a mask is for inpainting; task 'colorize' takes none"):
        genkit_edit.edit(colour, "colorize", images(colour, 1), mask=mask)
    with pytest.raises(GenkitError, match="input not found"):
        genkit_edit.edit(colour, "inpaint", tmp_path / "missing")
    with pytest.raises(GenkitError) as error:
        genkit_edit.edit(colour, "inpant", images(colour, 1))
    assert "unknown editing task 'inpant' (did you mean 'inpaint'?)" in one_line(error)


# ----------------------------------------------------------------------------- plugin and CLI


def test_the_plugin_registers_every_task_through_its_hook(registries):
    found = {}
    genkit_edit.register_edit_tasks(lambda name, factory: found.setdefault(name, factory))
    assert sorted(found) == ["colorize", "denoise", "inpaint", "interpolate", "stroke", "superres"]
    assert registries.edit_tasks.names() == sorted(found)  # through the entry point `edit = "genkit_edit"`


def test_the_cli_edits_a_folder_and_writes_side_by_side_pictures(runs, tmp_path):
    from PIL import Image
    from genkit.cli.main import build_app

    folder = tmp_path / "inputs"
    folder.mkdir()
    generator = np.random.default_rng(1)
    for name in ("a", "b"):
        write_png(folder / f"{name}.png", generator.integers(0, 256, (RESOLUTION, RESOLUTION, 3), dtype=np.uint8))
    out = tmp_path / "out"
    app = build_app()
    result = CliRunner().invoke(app, ["edit", str(runs[3]), "--task", "inpaint", "--input", str(folder), "--mask-name", "left-half",
                                      "--steps", "2", "--out", str(out), "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "grid.png", "side-by-side"]
    side = Image.open(out / "side-by-side" / "a.png")
    assert side.width > 2.9 * side.height  # input, what was known, result
    edited = np.asarray(Image.open(out / "a.png"))
    original = np.asarray(Image.open(folder / "a.png"))
    assert np.abs(edited[:, RESOLUTION // 2 :].astype(int) - original[:, RESOLUTION // 2 :]).max() <= 1  # the kept half
    result = CliRunner().invoke(app, ["edit", str(runs[3]), "--task", "superres", "--input", str(folder / "a.png"), "--set", "factor=2",
                                      "--out", str(tmp_path / "sr")])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["edit", str(runs[1]), "--task", "colorize", "--input", str(folder)])
    assert result.exit_code == 1 and "colorize needs a colour model; this run's images have 1 channel" in result.output
    result = CliRunner().invoke(app, ["edit", str(runs[3]), "--task", "inpant", "--input", str(folder)])
    assert result.exit_code == 1 and "did you mean 'inpaint'" in result.output

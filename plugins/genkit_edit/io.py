"""Reading input images and masks, writing edited images and side-by-side pictures."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from genkit import files
from genkit.errors import GenkitError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def image_paths(sources: Sequence[str | Path]) -> list[Path]:
    """Each source is an image file or a folder of them (its image files, by name)."""
    paths: list[Path] = []
    for source in sources:
        source = Path(source)
        if source.is_dir():
            found = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise GenkitError(f"no images in {source} (looked for {', '.join(IMAGE_SUFFIXES)})")
            paths += found
        elif source.is_file():
            paths.append(source)
        else:
            raise GenkitError(f"input not found: {source}")
    if not paths:
        raise GenkitError("no input images given")
    return paths


def _open(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(path)
        image.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:  # a bomb: far too many pixels
        raise GenkitError(f"{path}: not an image PIL can read ({type(error).__name__})") from None
    return image


def _is_gray(image) -> bool:
    if image.mode in GRAY_MODES:
        return True
    rgb = np.asarray(image.convert("RGB"))
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def _square(image):
    width, height = image.size
    if width == height:
        return image
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return image.crop((left, top, left + side, top + side))


def _sizes_text(sizes: Sequence[int]) -> str:
    return " or ".join(f"{s}x{s}" for s in sizes)


def read_image(path: Path, channels: int, sizes: Sequence[int], resize: bool = False, convert: bool = False,
               accepts_gray: bool = False) -> torch.Tensor:
    """One image as (channels, side, side) in [-1, 1]. A colour image for a grayscale model, or
    the reverse, is an error unless ``convert`` (a grayscale model takes an RGB file with three
    equal channels; ``accepts_gray``: a colour model's task that takes grayscale inputs as they are);
    a side not in ``sizes`` is an error unless ``resize`` (centre crop, bicubic, to sizes[0])."""
    from PIL import Image

    path = Path(path)
    image = _open(path)
    gray = image.mode in GRAY_MODES  # a grayscale file; an RGB file is colour for a colour model
    if channels == 1 and not _is_gray(image) and not convert:
        raise GenkitError(f"{path} is a colour image but the model draws grayscale images (1 channel); pass --convert to convert it")
    if channels == 3 and gray and not (convert or accepts_gray):
        raise GenkitError(f"{path} is a grayscale image but the model draws colour images (3 channels); pass --convert to repeat its channel")
    width, height = image.size
    if not (width == height and width in sizes):
        if not resize:
            raise GenkitError(f"{path} is {width}x{height} but the model's images are {_sizes_text(sizes)}; pass --resize to resize it")
        image = _square(image.convert("RGB" if not gray else "L")).resize((sizes[0], sizes[0]), Image.Resampling.BICUBIC)
    pixels = np.asarray(image.convert("L" if channels == 1 else "RGB"), dtype=np.float32)
    tensor = torch.from_numpy(pixels.copy()) / 127.5 - 1
    return tensor[None] if channels == 1 else tensor.permute(2, 0, 1).contiguous()


def read_images(sources, channels: int, sizes: Sequence[int], resize: bool = False, convert: bool = False,
                accepts_gray: bool = False) -> tuple[torch.Tensor, list[str]]:
    """Images from files or folders, as (N, C, side, side) in [-1, 1], and their names (file
    stems, made unique). They must share one side (a task may accept several, e.g. superres)."""
    paths = image_paths([sources] if isinstance(sources, (str, Path)) else sources)
    images = [read_image(p, channels, sizes, resize, convert, accepts_gray) for p in paths]
    sides = sorted({int(i.shape[-1]) for i in images})
    if len(sides) > 1:
        raise GenkitError(f"the input images have different sizes ({_sizes_text(sides)}); give one size at a time")
    return torch.stack(images), unique_names([p.stem for p in paths])


def unique_names(names: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        count = seen.get(name, 0)
        seen[name] = count + 1
        unique.append(name if count == 0 else f"{name}-{count}")
    return unique


def read_mask(path: str | Path, resolution: int, resize: bool = False) -> torch.Tensor:
    """A mask image as (H, W) bool: white (above mid-gray) = to fill. Its size must be the
    images' (``resize``: resized to it, nearest)."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise GenkitError(f"mask not found: {path}")
    image = _open(path).convert("L")
    width, height = image.size
    if (width, height) != (resolution, resolution):
        if not resize:
            raise GenkitError(f"mask {path} is {width}x{height} but the images are {resolution}x{resolution}")
        image = image.resize((resolution, resolution), Image.Resampling.NEAREST)
    return torch.from_numpy(np.asarray(image) > 127)


def check_mask(mask: torch.Tensor, images: int, resolution: int) -> torch.Tensor:
    """A mask tensor given from Python: (H, W) or (N, H, W), True (or > 0.5) = to fill."""
    mask = torch.as_tensor(mask)
    mask = mask if mask.dtype == torch.bool else mask > 0.5
    if mask.ndim == 4 and mask.shape[1] == 1:
        mask = mask[:, 0]
    if mask.ndim not in (2, 3) or tuple(mask.shape[-2:]) != (resolution, resolution):
        raise GenkitError(f"the mask is {'x'.join(map(str, mask.shape))} but the images are {resolution}x{resolution}")
    if mask.ndim == 3 and mask.shape[0] not in (1, images):
        raise GenkitError(f"{mask.shape[0]} masks for {images} images: give one mask, or one per image")
    return mask[0] if mask.ndim == 3 and mask.shape[0] == 1 else mask


# ----------------------------------------------------------------------------- writing


def _unit(images: torch.Tensor) -> torch.Tensor:
    return ((images.float() + 1) / 2).clamp(0, 1)


def save_png(image: torch.Tensor, path: Path) -> Path:
    """One (C, H, W) image in [-1, 1] as a PNG: grayscale for 1 channel, RGB for 3."""
    from PIL import Image

    pixels = (_unit(image.detach().cpu()) * 255).round().to(torch.uint8)
    array = pixels[0].numpy() if pixels.shape[0] == 1 else pixels.permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="png")  # uint8 (H, W) is L, (H, W, 3) is RGB
    return files.write_atomic(path, buffer.getvalue())


def _enlarged(images: torch.Tensor, at_least: int = 96) -> torch.Tensor:
    """Tiny images scaled up by whole pixels, so a picture of 16x16 images can be seen."""
    scale = max(1, at_least // images.shape[-1])
    return images.repeat_interleave(scale, -2).repeat_interleave(scale, -1) if scale > 1 else images


def _save_rows(rows: list[torch.Tensor], path: Path) -> Path:
    """Rows of images (each (columns, C, H, W), equal columns) as one picture."""
    from torchvision.utils import save_image

    columns = rows[0].shape[0]
    buffer = io.BytesIO()
    save_image(_enlarged(_unit(torch.cat(rows))), buffer, nrow=columns, padding=2, pad_value=1.0, format="png")
    return files.write_atomic(path, buffer.getvalue())


def save_edits(result, out: str | Path) -> list[Path]:
    """Every edited image as OUT/NAME.png (interpolate: OUT/NAME-fKK.png per frame), one
    side-by-side picture per input as OUT/side-by-side/NAME.png (input, what the sampler knew,
    result; interpolate: the frames, with the inputs at the ends when given) and OUT/grid.png."""
    out = Path(out)
    (out / "side-by-side").mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    rows = []
    if result.results.ndim == 5:  # interpolation: (pairs, frames, C, H, W)
        for k, name in enumerate(result.names):
            frames = result.results[k]
            for f, frame in enumerate(frames):
                written.append(save_png(frame, out / f"{name}-f{f:02d}.png"))
            row = frames if result.inputs is None else torch.cat([result.inputs[k, :1], frames, result.inputs[k, 1:]])
            rows.append(row)
            written.append(_save_rows([row], out / "side-by-side" / f"{name}.png"))
    else:
        for k, name in enumerate(result.names):
            written.append(save_png(result.results[k], out / f"{name}.png"))
            row = torch.stack([result.inputs[k], result.degraded[k], result.results[k]])
            rows.append(row)
            written.append(_save_rows([row], out / "side-by-side" / f"{name}.png"))
    written.append(_save_rows(rows, out / "grid.png"))
    return written

